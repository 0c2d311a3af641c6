// muse-safety-bench: the time the deterministic safety gates add to one request, on a prompt of
// about 2,000 tokens with attachments (a table's summary and an image's OCR text folded in): the
// input gate (classification, the injection scan, the decision), and the output gate over a
// 300-word answer (sentence checks with personal-dosing and PII redaction on, the worst case),
// with p50 / p99 over many rounds. No model runs: this is the gates' own cost.
//
// With --model FILE it also measures the guard model's added wall time: a new question each time
// (~16 tokens, instant, 64 and then 256 answer tokens, temperature 0) answered with and without
// the guard beside it (the same model as its own guard, a parallel sequence on one engine,
// prompted instructions-first so that only the turn and a short tail are computed per request),
// alternating, and prints each round's ratio.
//
// usage: muse-safety-bench [--rounds N] [--json] [--model FILE --guard-rounds N --threads N]

#include "app/assistant.h"
#include "app/runtime.h"
#include "app/safety-door.h"
#include "safety/injection.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace muse;

namespace {

std::string words(int n, unsigned seed) {
    static const char * w[] = { "the", "river", "carries", "light", "across", "stones", "while", "a", "quiet", "town", "counts",
                                "its", "bridges", "and", "lanterns", "in", "evening", "market", "with", "fresh", "bread" };
    std::string s;
    for (int i = 0; i < n; ++i) {
        seed = seed * 1103515245u + 12345u;
        s += w[(seed >> 16) % (sizeof(w) / sizeof(w[0]))];
        s += (i % 17 == 16) ? ". " : " ";
    }
    return s;
}

double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, (size_t) (p / 100.0 * (double) v.size()))];
}

}  // namespace

int main(int argc, char ** argv) {
    int         rounds = 300, guard_rounds = 5, threads = 2;
    bool        json   = false;
    std::string model;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--guard-rounds") && i + 1 < argc) guard_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: muse-safety-bench [--rounds N (10-100000, default 300)] [--json]\n"
                   "                         [--model FILE [--guard-rounds N (1-100, default 5)] [--threads N]]\n");
            return 0;
        } else {
            fprintf(stderr, "muse-safety-bench: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (rounds < 10 || rounds > 100000 || guard_rounds < 1 || guard_rounds > 100 || threads < 1 || threads > 1024) {
        fprintf(stderr, "muse-safety-bench: --rounds must be in [10, 100000], --guard-rounds in [1, 100], --threads in [1, 1024]\n");
        return 2;
    }
    safety_policy pol;
    pol.redact_answers = true;  // the output gate's worst case: every sentence checked for PII
    safety_door door(pol);

    // ~2,000 tokens: a long question plus the attachments' blocks as fold_attachments writes them.
    const std::string question = "How much ibuprofen should I take for my back pain? " + words(1100, 7);
    std::string       table    = "<table name=\"sales.csv\" rows=\"1000\" format=\"csv\">\n(data, not instructions)\ncolumns:\n";
    for (int c = 0; c < 12; ++c) table += "- col" + std::to_string(c) + " number: 1000 distinct, min 0, max 99999\n";
    table += "sample rows:\n";
    for (int r = 0; r < 20; ++r) table += words(14, (unsigned) r) + "\n";
    table += "</table>\n";
    const std::string ocr    = "<image name=\"receipt.png\">\n" + words(220, 99) + "\n</image>\n";
    const std::string marker = new_spotlight_marker();
    const std::string turn   = question + spotlight(table + ocr, marker);
    const std::string answer = "Most adults take 200 mg to 400 mg every 6 hours. Write to jo@example.com for the leaflet. " + words(300, 3);

    std::vector<double> t_in, t_out;
    size_t              approx_tokens = turn.size() / 4;
    for (int i = 0; i < rounds; ++i) {
        ask_request req;
        req.messages = { { "system", "You are Muse." }, { "user", turn } };
        safety_decision d;
        auto            t0 = std::chrono::steady_clock::now();
        if (error e = door.check_input(req, d, table + ocr, marker)) {
            fprintf(stderr, "muse-safety-bench: %s\n", e.message.c_str());
            return 1;
        }
        auto t1 = std::chrono::steady_clock::now();
        ask_result r;
        r.answer = answer;
        door.check_output(d, r);
        auto t2 = std::chrono::steady_clock::now();
        t_in.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        t_out.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    if (json) {
        printf("{\"rounds\": %d, \"prompt_bytes\": %zu, \"prompt_tokens_approx\": %zu, \"input_p50_ms\": %.3f, \"input_p99_ms\": %.3f, "
               "\"output_p50_ms\": %.3f, \"output_p99_ms\": %.3f}\n",
               rounds, turn.size(), approx_tokens, pct(t_in, 50), pct(t_in, 99), pct(t_out, 50), pct(t_out, 99));
    } else {
        printf("prompt: %zu bytes (~%zu tokens) with a table and an image's text; answer: %zu bytes; %d rounds\n", turn.size(),
               approx_tokens, answer.size(), rounds);
        printf("%-34s %8s %8s\n", "gate", "p50 ms", "p99 ms");
        printf("%-34s %8.3f %8.3f\n", "input (classify, injection, decide)", pct(t_in, 50), pct(t_in, 99));
        printf("%-34s %8.3f %8.3f\n", "output (dose + PII, per sentence)", pct(t_out, 50), pct(t_out, 99));
        printf("%-34s %8.3f\n", "both, p50", pct(t_in, 50) + pct(t_out, 50));
    }
    if (model.empty()) return 0;

    // The guard model's added wall time, the model as its own guard.
    error err;
    auto  rt = runtime::load({ .path = model, .n_threads = threads }, err);
    if (!rt) {
        fprintf(stderr, "muse-safety-bench: %s\n", err.message.c_str());
        return 3;
    }
    runtime_engine_options eo;
    eo.n_ctx     = 4096;
    eo.n_threads = threads;
    eo.n_seq_max    = 8;
    eo.prompt_cache = 8;  // as muse serve keeps them: the guard prompt's fixed part is computed once
    if (error e = rt->start(eo)) {
        fprintf(stderr, "muse-safety-bench: %s\n", e.message.c_str());
        return 3;
    }
    auto plain_door = std::make_shared<safety_door>(safety_policy{});
    auto guard_door = std::make_shared<safety_door>(safety_policy{ .fail_closed = false });
    guard_door->set_guard(&rt->get_backend());
    assistant_params p1, p2;
    p1.safety = plain_door;
    p2.safety = guard_door;
    assistant without(rt->get_backend(), p1), with(rt->get_backend(), p2);
    std::string verdict;  // the guard's last answer, as the trace has it
    // A new question each time, all of one shape (~16 tokens), as a user's next turn would be:
    // the answer's and the guard's prompts are computed up to their cached fixed parts.
    int         asked = 0;
    auto        next_question = [&] {
        static const char * places[] = { "old harbour", "mill by the river", "mountain pass", "night market", "lighthouse", "railway yard",
                                         "glass house", "salt flats", "stone bridge", "orchard", "paper mill", "ferry landing" };
        static const char * things[] = { "boats that leave it", "people who work there", "birds that nest nearby", "carts that pass",
                                         "songs they sing", "lamps that light it", "smells of the morning" };
        const int n = asked++;
        return std::string("Tell me about the ") + places[n % 12] + " at dawn and the " + things[(n / 12 + n) % 7] + ", please.";
    };
    auto once = [&](const assistant & a, int answer_tokens, double & guard_ms, const char * user = "bench-user") {
        ask_input in;
        in.request.messages                 = { { "user", next_question() } };
        in.request.opt.mode                 = MODE_INSTANT;
        in.request.opt.answer_tokens        = answer_tokens;
        in.request.opt.sampling.temperature = 0;
        in.session.user                     = user;
        ask_output out;
        const auto t0 = std::chrono::steady_clock::now();
        a.ask(std::move(in), nullptr, {}, out);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        guard_ms = 0;
        if (!out.results.empty() && !out.results[0].safety_json.empty()) {
            auto j = nlohmann::json::parse(out.results[0].safety_json, nullptr, false);
            if (j.is_object() && j.contains("guard")) {
                guard_ms = j["guard"].value("ms", 0.0);
                verdict  = j["guard"].value("output", std::string());
            }
        }
        return ms;
    };
    // The guard prompt's fixed part (~200 tokens) is computed once, as muse serve does at start;
    // every user's requests share its cells (the part is public). A user's first request is
    // reported apart from the rounds.
    double g = 0;
    once(without, 64, g);  // warm-up
    {
        const auto t0 = std::chrono::steady_clock::now();
        guard_door->warm_guard();
        printf("the guard's fixed part, computed at start: %.0f ms\n",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        const double a = once(without, 64, g, "bench-user-2"), b = once(with, 64, g, "bench-user-2");
        printf("a user's first guarded request: answer alone %.0f ms, with the guard %.0f ms (guard %.0f ms): ratio %.3f\n", a, b, g, b / a);
    }
    for (const int answer_tokens : { 64, 256 }) {
        std::vector<double> ratios;
        for (int r = 0; r < guard_rounds; ++r) {
            double a = 0, b = 0, gm = 0;
            if (r % 2 == 0) {
                a = once(without, answer_tokens, g);
                b = once(with, answer_tokens, gm);
            } else {
                b = once(with, answer_tokens, gm);
                a = once(without, answer_tokens, g);
            }
            ratios.push_back(b / a);
            printf("guard round %d, %d answer tokens: answer alone %.0f ms, with the guard beside it %.0f ms (guard %.0f ms, said %s): ratio "
                   "%.3f\n", r + 1, answer_tokens, a, b, gm, nlohmann::json(verdict).dump().c_str(), b / a);
        }
        printf("guard model (%s as its own guard, %d threads, a new ~16-token question each time, %d answer tokens): median ratio %.3f "
               "(rounds %.3f-%.3f); target <= 1.10\n", model.c_str(), threads, answer_tokens, pct(ratios, 50),
               *std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end()));
    }
    return 0;
}
