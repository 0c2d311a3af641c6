// muse-modes-bench: wall time of Muse's reasoning modes on one shared prompt, so that
// bench/run-modes can set them beside llama-server answering one request with n = K.
//
//   contemplating  one orchestrator run, K solver agents forked from the shared prompt
//                  (planner off, pruning off, no tools), then Muse's own aggregation
//   thinking x1    one thinking run (one agent)
//   thinking xK    K thinking runs one after the other, each an independent request that
//                  prefills the whole prompt again
//
// Every reasoning agent may generate exactly ntg tokens: a reasoning budget of ntg - A and
// A answer tokens (max_tokens = budget + answer). An agent that stops before ntg tokens (an
// end-of-generation token) is reported and the round is retried with another seed.
//
// The prompt is a fixed pseudo-random word list measured with the model's tokenizer until it
// is npp ± 8 tokens long; --prompt-out writes it so that llama-server gets the same text.
// With --question TEXT (a model that answers, such as Muse-Tiny) the prompt is that question
// and every agent stops where the model ends its answer (at most ntg tokens): the solvers'
// answers can agree, and Muse's aggregation is then a vote.
// Output: one JSON object per line on stdout; progress and errors on stderr.

#include "agents/tools.h"
#include "common.h"
#include "args.h"
#include "backend/local-backend.h"
#include "engine/engine.h"
#include "engine/logging.h"
#include "engine/model.h"
#include "reasoning/orchestrator.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

struct options {
    std::string model;
    std::string prompt_out;
    std::string question;  // a real question; agents stop naturally
    int32_t     n_threads     = 2;
    int32_t     npp           = 512;
    int32_t     ntg           = 64;
    int32_t     answer_tokens = 16;
    int32_t     agents        = 4;
    int32_t     rounds        = 1;
    int32_t     retries       = 5;
    int32_t     seed          = 42;
    int32_t     draft         = -1;  // engine_params::draft_max; -1: the engine's default
    bool        fixed_threads = false;  // engine_params::adaptive_threads off
    bool        warmup        = true;
    bool        contemplating = true;  // which tests run (--only)
    bool        thinking      = true;
    bool        thinking_seq  = true;
};

void print_usage(const char * argv0) {
    printf(
        "usage: %s -m FILE [options]\n"
        "\n"
        "Wall time of Muse's reasoning modes on one shared prompt: contemplating with K agents\n"
        "(planner off, pruning off, no tools), one thinking run, and K sequential thinking runs.\n"
        "Every reasoning agent may generate exactly --ntg tokens (reasoning budget ntg - A, then A\n"
        "answer tokens); an agent that stops early is reported and the round retried with another seed.\n"
        "\n"
        "options:\n"
        "  -m, --model FILE        GGUF model (required)\n"
        "  -t, --threads N         CPU threads, 1-1024 (default: 2)\n"
        "      --npp N             shared prompt tokens (the user message), 16-32768 (default: 512)\n"
        "      --ntg N             tokens generated per agent, 2-4096 (default: 64)\n"
        "      --answer-tokens A   of those, answer tokens after the reasoning, 1-(ntg-1) (default: 16)\n"
        "      --agents K          contemplating agents and sequential thinking runs, 1-16 (default: 4)\n"
        "      --rounds N          measure every test N times, 1-100 (default: 1)\n"
        "      --retries N         new seeds to try when an agent stops early, 0-100 (default: 5)\n"
        "      --seed N            first sampling seed, 0-2147483647 (default: 42)\n"
        "      --draft N           drafted tokens per sequence and step (prompt lookup), 0-16 (0: off;\n"
        "                          default: the engine's)\n"
        "      --fixed-threads     decode with --threads threads always (the engine's adaptive choice off)\n"
        "      --prompt-out FILE   write the prompt text (the user message) to FILE\n"
        "      --question TEXT     ask TEXT instead of a generated prompt; agents stop where the\n"
        "                          model ends (at most --ntg tokens), so a vote is possible\n"
        "      --no-warmup         skip the warm-up runs (one thinking run, one contemplating run)\n"
        "      --only LIST         run only these tests, comma-separated: contemplating, thinking,\n"
        "                          thinking_seq (default: all three)\n"
        "  -h, --help              this help\n"
        "\n"
        "stdout: JSON lines {\"test\": \"contemplating\" | \"contemplating_answers\" | \"thinking\" | \"thinking_seq\",\n"
        "        \"wall_ms\", ...}.\n",
        argv0);
}

// Returns false (after printing why) on a bad command line.
bool parse_args(int argc, char ** argv, options & o) {
    muse::cli::args a(argc, argv, 1);
    while (!a.done() && a.error.empty()) {
        if (a.flag("-h") || a.flag("--help")) {
            print_usage(argv[0]);
            exit(0);
        }
        if (a.value("-m", o.model) || a.value("--model", o.model)) continue;
        if (a.value("--prompt-out", o.prompt_out)) continue;
        if (a.value("--question", o.question)) continue;
        if (a.int_value("-t", 1, 1024, o.n_threads) || a.int_value("--threads", 1, 1024, o.n_threads)) continue;
        if (a.int_value("--npp", 16, 32768, o.npp)) continue;
        if (a.int_value("--ntg", 2, 4096, o.ntg)) continue;
        if (a.int_value("--answer-tokens", 1, 4095, o.answer_tokens)) continue;
        if (a.int_value("--agents", 1, 16, o.agents)) continue;
        if (a.int_value("--rounds", 1, 100, o.rounds)) continue;
        if (a.int_value("--retries", 0, 100, o.retries)) continue;
        if (a.int_value("--seed", 0, 2147483647, o.seed)) continue;
        if (a.int_value("--draft", 0, 16, o.draft)) continue;
        if (a.flag("--fixed-threads")) { o.fixed_threads = true; continue; }
        if (a.flag("--no-warmup")) { o.warmup = false; continue; }
        if (std::string list; a.value("--only", list)) {
            o.contemplating = o.thinking = o.thinking_seq = false;
            for (const std::string & t : string_split<std::string>(list, ',')) {
                if (t == "contemplating") {
                    o.contemplating = true;
                } else if (t == "thinking") {
                    o.thinking = true;
                } else if (t == "thinking_seq") {
                    o.thinking_seq = true;
                } else {
                    a.error = "--only: unknown test '" + t + "' (contemplating, thinking, thinking_seq)";
                }
            }
            continue;
        }
        a.error = "unknown option '" + a.peek() + "' (see --help)";
    }
    if (a.error.empty() && o.model.empty()) {
        a.error = "no model given; pass -m FILE (see --help)";
    }
    if (a.error.empty() && o.answer_tokens >= o.ntg) {
        a.error = "--answer-tokens (" + std::to_string(o.answer_tokens) + ") must be below --ntg (" +
                  std::to_string(o.ntg) + "): the rest is the reasoning budget";
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse-modes-bench: %s\n", a.error.c_str());
        return false;
    }
    return true;
}

// A fixed pseudo-random text of npp ± 8 tokens, measured with the model's own tokenizer.
std::string make_prompt(const muse::engine & eng, int32_t npp) {
    static const char * k_words[] = {
        "river",   "stone",  "garden", "market", "signal", "window", "forest", "engine",  "copper", "silver",
        "harbor",  "lantern", "orbit", "pencil", "canvas", "thunder", "meadow", "circuit", "valley", "basket",
        "compass", "mirror", "ladder", "violet", "anchor", "crystal", "saddle", "tunnel",  "falcon", "pepper",
        "ribbon",  "summit", "timber", "walnut", "glacier", "harvest", "island", "jigsaw", "kettle", "marble",
    };
    const size_t n_words = sizeof(k_words) / sizeof(k_words[0]);
    uint64_t     state   = 0x9E3779B97F4A7C15ull;
    auto         rnd     = [&]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t) (state >> 33);
    };
    std::string text = "Consider the following list of words and summarise what they have in common:";
    std::string best = text;
    for (int guard = 0; guard < 4 * npp + 64; ++guard) {
        std::string next = text + " " + k_words[rnd() % n_words];
        if (rnd() % 11 == 0) {
            next += ".";
        }
        const int32_t n = (int32_t) eng.tokenize(next).size();
        if (n > npp + 8) {
            break;
        }
        text = next;
        best = text;
        if (n >= npp) {
            break;
        }
    }
    return best;
}

struct run_outcome {
    muse::ask_result res;
    double           wall_ms = 0;
    bool             early   = false;  // a reasoning agent generated fewer than ntg tokens
    std::string      why;
    // The engine's own counters over the run: where the wall time went.
    uint64_t         decode_calls = 0;
    uint64_t         draft_tokens = 0, draft_accepted = 0;
    double           decode_ms = 0, step_ms = 0;
};

// Agents that reason and answer (solvers, the thinking agent) must generate exactly ntg tokens.
bool is_generating_agent(const muse::ask_agent_trace & t) {
    return t.kind == muse::AGENT_SOLVER || t.kind == muse::AGENT_ANSWER;
}

run_outcome run_once(muse::engine & eng, muse::orchestrator & orch, const std::string & prompt, const options & o,
                     muse::ask_mode mode, uint32_t seed) {
    muse::ask_request req;
    muse::chat_message user;
    user.role    = "user";
    user.content = prompt;
    req.messages.push_back(user);
    req.opt.mode              = mode;
    req.opt.agents            = o.agents;
    req.opt.budget            = o.ntg - o.answer_tokens;
    req.opt.answer_tokens     = o.answer_tokens;
    req.opt.planner           = false;
    req.opt.prune             = false;
    req.opt.refine            = false;
    req.opt.tools.clear();
    req.opt.max_tool_steps    = 0;
    req.opt.sampling.seed     = seed;
    run_outcome out;
    const muse::engine_stats s0 = eng.stats();
    const auto  t0 = clock_type::now();
    out.res        = orch.run(req);
    out.wall_ms    = ms_since(t0);
    const muse::engine_stats s1 = eng.stats();
    out.decode_calls = s1.decode_calls - s0.decode_calls;
    out.draft_tokens   = s1.draft_tokens - s0.draft_tokens;
    out.draft_accepted = s1.draft_accepted - s0.draft_accepted;
    out.decode_ms    = (double) (s1.decode_us - s0.decode_us) / 1e3;
    out.step_ms      = (double) (s1.step_us - s0.step_us) / 1e3;
    if (out.res.err.code != 0) {
        out.why = "error: " + out.res.err.message;
        return out;
    }
    for (const auto & t : out.res.agents) {
        if (o.question.empty() && is_generating_agent(t) && t.tokens < o.ntg) {
            out.early = true;
            out.why += (out.why.empty() ? "" : "; ") + std::string(muse::agent_kind_name(t.kind)) + " " +
                       std::to_string(t.index) + " stopped after " + std::to_string(t.tokens) + " tokens (" +
                       muse::finish_reason_name(t.finish) + ")";
        }
    }
    return out;
}

nlohmann::ordered_json describe(const run_outcome & r) {
    nlohmann::ordered_json j;
    j["mode"]                    = muse::ask_mode_name(r.res.mode);
    j["run_total_ms"]            = r.res.total_ms;
    j["aggregation"]             = r.res.aggregation;
    j["prompt_tokens_prefilled"] = r.res.use.prompt_tokens_prefilled;
    j["prompt_tokens_reused"]    = r.res.use.prompt_tokens_reused;
    j["shared_prefix_tokens"]    = r.res.use.shared_prefix_tokens;
    j["completion_tokens"]       = r.res.use.completion_tokens;
    j["engine_decode_calls"]     = r.decode_calls;
    j["engine_draft_tokens"]     = r.draft_tokens;    // prompt-lookup drafts decoded
    j["engine_draft_accepted"]   = r.draft_accepted;  // of those, kept
    j["engine_decode_ms"]        = r.decode_ms;   // inside llama_decode
    j["engine_step_ms"]          = r.step_ms;     // whole engine steps (decode, sampling, events)
    nlohmann::ordered_json agents = nlohmann::ordered_json::array();
    for (const auto & t : r.res.agents) {
        agents.push_back({ { "kind", muse::agent_kind_name(t.kind) },
                           { "tokens", t.tokens },
                           { "prefilled", t.prompt_tokens_prefilled },
                           { "reused", t.prompt_tokens_reused },
                           { "finish", muse::finish_reason_name(t.finish) },
                           { "ms", t.end_ms - t.start_ms } });
    }
    j["agents"]               = agents;
    nlohmann::ordered_json st = nlohmann::ordered_json::object();
    for (const auto & s : r.res.timings) {
        st[s.step] = s.end_ms - s.start_ms;
    }
    j["steps_ms"] = st;
    return j;
}

}  // namespace

int main(int argc, char ** argv) {
    options o;
    if (!parse_args(argc, argv, o)) {
        return 2;
    }
    muse::log_init(0);

    muse::model_params mp;
    mp.path      = o.model;
    mp.n_threads = o.n_threads;
    muse::error err;
    auto        m = muse::model::load(mp, err);
    if (!m) {
        fprintf(stderr, "muse-modes-bench: cannot load %s: %s\n", o.model.c_str(), err.message.c_str());
        return 1;
    }
    // Room for the prompt (and its template), K agents of ntg tokens, and the aggregation.
    muse::engine_params ep;
    ep.n_threads = o.n_threads;
    ep.n_seq_max = std::max(8, 2 * o.agents + 4);
    if (o.draft >= 0) {
        ep.draft_max = o.draft;
    }
    ep.adaptive_threads = !o.fixed_threads;
    ep.n_ctx     = ((o.npp + 256) * 2 + (o.agents + 2) * (o.ntg + 64) + 255) / 256 * 256;
    ep.n_ctx     = std::max(ep.n_ctx, 4096);
    auto eng     = muse::engine::create(*m, ep, err);
    if (!eng) {
        fprintf(stderr, "muse-modes-bench: cannot create the engine: %s\n", err.message.c_str());
        return 1;
    }

    const std::string prompt   = o.question.empty() ? make_prompt(*eng, o.npp) : o.question;
    const int32_t     n_prompt = (int32_t) eng->tokenize(prompt).size();
    if (o.question.empty() && (n_prompt < o.npp - 8 || n_prompt > o.npp + 8)) {
        fprintf(stderr, "muse-modes-bench: could not build a %d-token prompt (got %d tokens)\n", o.npp, n_prompt);
        return 1;
    }
    if (!o.prompt_out.empty()) {
        std::ofstream f(o.prompt_out, std::ios::binary);
        f << prompt;
        if (!f) {
            fprintf(stderr, "muse-modes-bench: cannot write %s\n", o.prompt_out.c_str());
            return 1;
        }
    }

    muse::local_backend be(*eng);
    muse::orchestrator  orch(be, muse::tool_registry{});

    {
        nlohmann::ordered_json j;
        j["test"]               = "setup";
        j["model"]              = m->info().description;
        j["supports_reasoning"] = m->info().supports_reasoning;
        j["threads"]            = o.n_threads;
        j["npp"]                = o.question.empty() ? o.npp : n_prompt;
        j["question"]           = o.question;
        j["prompt_tokens"]      = n_prompt;
        j["ntg"]                = o.ntg;
        j["budget"]             = o.ntg - o.answer_tokens;
        j["answer_tokens"]      = o.answer_tokens;
        j["agents"]             = o.agents;
        j["n_ctx"]              = ep.n_ctx;
        j["draft_max"]          = ep.draft_max;
        j["adaptive_threads"]   = ep.adaptive_threads;
        printf("%s\n", j.dump().c_str());
        fflush(stdout);
    }

    if (o.warmup) {
        // As llama-bench warms up with the test it measures: one run of each measured mode (the
        // first run with K sequences decoding together is slower, and llama-server in
        // bench/run-modes has served its warm-up and earlier rounds by then). Nothing carries
        // over: with the prompt cache off every measured run prefills its prompt again, and the
        // contemplating warm-up asks another question (as llama-server's warm-up does), so the
        // model's memo of recent chat renders holds nothing of the measured run.
        fprintf(stderr, "[modes-bench] warm-up thinking run\n");
        run_once(*eng, orch, prompt, o, muse::MODE_THINKING, (uint32_t) o.seed);
        if (o.contemplating) {
            fprintf(stderr, "[modes-bench] warm-up contemplating run\n");
            run_once(*eng, orch, "Say hello.", o, muse::MODE_CONTEMPLATING, (uint32_t) o.seed);
        }
    }

    uint32_t seed     = (uint32_t) o.seed;
    int      failures = 0;
    // Runs one test, retrying with the next seed while an agent stops early; returns the last
    // outcome (early set when every try stopped early).
    auto measure = [&](muse::ask_mode mode) {
        run_outcome r;
        for (int attempt = 0; attempt <= o.retries; ++attempt) {
            r = run_once(*eng, orch, prompt, o, mode, seed);
            if (!r.why.empty()) {
                fprintf(stderr, "[modes-bench] %s, seed %u: %s%s\n", muse::ask_mode_name(mode), seed, r.why.c_str(),
                        r.early && attempt < o.retries ? "; retrying with another seed" : "");
            }
            if ((bool) r.res.err || !r.early) {
                break;
            }
            ++seed;
        }
        return r;
    };
    auto emit = [&](const char * test, int round, double wall_ms, const std::vector<run_outcome> & runs) {
        nlohmann::ordered_json j;
        j["test"]    = test;
        j["round"]   = round;
        j["wall_ms"] = wall_ms;
        j["seed"]    = seed;
        bool early = false, failed = false;
        int  completion = 0, prefilled = 0, reused = 0;
        nlohmann::ordered_json rs = nlohmann::ordered_json::array();
        for (const auto & r : runs) {
            early  = early || r.early;
            failed = failed || (bool) r.res.err;
            completion += r.res.use.completion_tokens;
            prefilled += r.res.use.prompt_tokens_prefilled;
            reused += r.res.use.prompt_tokens_reused;
            rs.push_back(describe(r));
        }
        j["completion_tokens"]       = completion;
        j["prompt_tokens_prefilled"] = prefilled;
        j["prompt_tokens_reused"]    = reused;
        j["early_stop"]              = early;
        j["failed"]                  = failed;
        j["runs"]                    = rs;
        printf("%s\n", j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
        fflush(stdout);
        if (early || failed) {
            ++failures;
        }
    };

    for (int round = 1; round <= o.rounds; ++round) {
        if (o.contemplating) {
            fprintf(stderr, "[modes-bench] round %d: contemplating K=%d\n", round, o.agents);
            run_outcome r = measure(muse::MODE_CONTEMPLATING);
            emit("contemplating", round, r.wall_ms, { r });
            // The same run up to the moment all K solvers had answered: what llama-server's
            // n = K request delivers. Aggregation comes after (a vote costs nothing; with
            // random weights the answers never agree and a synthesiser writes one more).
            for (const auto & st : r.res.timings) {
                if (st.step == "solvers") {
                    emit("contemplating_answers", round, st.end_ms, { r });
                }
            }
        }
        if (o.thinking) {
            fprintf(stderr, "[modes-bench] round %d: thinking x1\n", round);
            run_outcome r = measure(muse::MODE_THINKING);
            emit("thinking", round, r.wall_ms, { r });
        }
        if (o.thinking_seq) {
            fprintf(stderr, "[modes-bench] round %d: thinking x%d sequential\n", round, o.agents);
            // K independent requests one after the other: the sum of their wall times (a retry
            // after an early stop replaces a run, it is not added).
            std::vector<run_outcome> runs;
            double                   total = 0;
            for (int k = 0; k < o.agents; ++k) {
                runs.push_back(measure(muse::MODE_THINKING));
                total += runs.back().wall_ms;
                ++seed;  // independent requests, distinct samples
            }
            emit("thinking_seq", round, total, runs);
        }
    }
    if (failures > 0) {
        fprintf(stderr, "muse-modes-bench: %d test(s) had an agent stop early or fail; see early_stop / failed\n",
                failures);
    }
    return 0;
}
