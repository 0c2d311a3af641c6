// muse-tasks: writes arithmetic problems with known answers as JSON Lines, for `muse eval`
// (held-out test sets) and for training (with the scratchpad each answer is reasoned with).
//
//   muse-tasks --split test --digits 3 --count 200 --seed 1 -o add3-test.jsonl
//   muse eval add3-test.jsonl --model muse-tiny.gguf

#include "arith.h"
#include "reasoning/contemplating/prompts.h"
#include "reasoning/modes.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>

using namespace muse::tasks;

static const char * k_help =
    "usage: muse-tasks [options]\n"
    "\n"
    "Writes arithmetic problems (multi-digit addition and subtraction) as JSON Lines.\n"
    "A problem is held out for testing by a hash of the problem itself, so the test split\n"
    "never meets a training set, whatever the seeds.\n"
    "\n"
    "  --split S        test (default) or train\n"
    "  --format F       eval: {\"id\", \"question\", \"answer\"} (muse eval's format, default)\n"
    "                   train: {\"question\", \"reasoning\", \"answer\"} (reasoning: the scratchpad)\n"
    "                   check: Contemplating's verifier task (--verify): the question with a candidate\n"
    "                   answer to check, {\"id\", \"question\", \"answer\": \"Verdict: right\" or\n"
    "                   \"Verdict: wrong\", \"candidate\", \"slip\"}; muse eval scores the verdicts\n"
    "  --candidate C    with --format check: right (the answer), slip (a solver's kind of slip: a\n"
    "                   digit off by one, dropped, doubled or swapped) or mix (every second one\n"
    "                   slipped; default)\n"
    "  --op OP          add, sub or mix (default mix)\n"
    "  --digits N|A-B   operand length, 1-18 (default 3)\n"
    "  --count N        problems, 1-1000000 (default 100); a test set has no repeats\n"
    "  --seed N         (default 1)\n"
    "  -o FILE          write here (default: standard output)\n"
    "  -h, --help       this help\n";

static bool parse_u64(const char * s, uint64_t lo, uint64_t hi, uint64_t & out) {
    if (!s || !*s) return false;
    char * end = nullptr;
    errno      = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v < lo || v > hi) return false;
    out = v;
    return true;
}

int main(int argc, char ** argv) {
    generator_params gp;
    std::string      split = "test", format = "eval", op = "mix", candidate = "mix", out_path;
    uint64_t         count = 100;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char * name) -> const char * {
            if (i + 1 >= argc) {
                fprintf(stderr, "muse-tasks: %s needs a value\n", name);
                exit(2);
            }
            return argv[++i];
        };
        uint64_t v = 0;
        if (a == "-h" || a == "--help") {
            fputs(k_help, stdout);
            return 0;
        } else if (a == "--split") {
            split = value("--split");
        } else if (a == "--format") {
            format = value("--format");
        } else if (a == "--candidate") {
            candidate = value("--candidate");
        } else if (a == "--op") {
            op = value("--op");
        } else if (a == "--digits") {
            const std::string d = value("--digits");
            const size_t      dash = d.find('-');
            uint64_t          lo = 0, hi = 0;
            const bool ok = dash == std::string::npos ? parse_u64(d.c_str(), 1, 18, lo) && (hi = lo, true)
                                                      : parse_u64(d.substr(0, dash).c_str(), 1, 18, lo) &&
                                                            parse_u64(d.substr(dash + 1).c_str(), 1, 18, hi) && lo <= hi;
            if (!ok) {
                fprintf(stderr, "muse-tasks: --digits must be N or A-B with 1 <= A <= B <= 18, got '%s'\n", d.c_str());
                return 2;
            }
            gp.digits_min = (int) lo;
            gp.digits_max = (int) hi;
        } else if (a == "--count") {
            if (!parse_u64(value("--count"), 1, 1000000, count)) {
                fprintf(stderr, "muse-tasks: --count must be in [1, 1000000]\n");
                return 2;
            }
        } else if (a == "--seed") {
            if (!parse_u64(value("--seed"), 0, UINT64_MAX, v)) {
                fprintf(stderr, "muse-tasks: --seed must be a whole number\n");
                return 2;
            }
            gp.seed = v;
        } else if (a == "-o") {
            out_path = value("-o");
        } else {
            fprintf(stderr, "muse-tasks: unknown option '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    if (split != "test" && split != "train") {
        fprintf(stderr, "muse-tasks: --split is test or train, not '%s'\n", split.c_str());
        return 2;
    }
    if (format != "eval" && format != "train" && format != "check") {
        fprintf(stderr, "muse-tasks: --format is eval, train or check, not '%s'\n", format.c_str());
        return 2;
    }
    if (candidate != "right" && candidate != "slip" && candidate != "mix") {
        fprintf(stderr, "muse-tasks: --candidate is right, slip or mix, not '%s'\n", candidate.c_str());
        return 2;
    }
    if (op != "add" && op != "sub" && op != "mix") {
        fprintf(stderr, "muse-tasks: --op is add, sub or mix, not '%s'\n", op.c_str());
        return 2;
    }
    gp.add = op != "sub";
    gp.sub = op != "add";
    FILE * f = out_path.empty() ? stdout : fopen(out_path.c_str(), "w");
    if (!f) {
        fprintf(stderr, "muse-tasks: cannot write %s: %s\n", out_path.c_str(), strerror(errno));
        return 1;
    }
    generator  g(gp);
    const auto s = split == "test" ? SPLIT_TEST : SPLIT_TRAIN;
    std::set<std::tuple<int, uint64_t, uint64_t>> seen;
    uint64_t written = 0, attempts = 0;
    while (written < count) {
        if (++attempts > 100 * count + 10000) {
            fprintf(stderr, "muse-tasks: only %llu distinct %s problems of this size; ask for fewer or more digits\n",
                    (unsigned long long) written, split.c_str());
            return 2;
        }
        const problem p = g.next(s);
        if (s == SPLIT_TEST && !seen.insert({ (int) p.op, p.a, p.b }).second) continue;
        nlohmann::ordered_json j;
        if (format == "check") {
            const bool slipped = candidate == "slip" || (candidate == "mix" && written % 2 == 1);
            const std::string cand = slipped ? std::to_string(g.slip(p)) : p.answer;
            muse::chat_message q;
            q.role    = "user";
            q.content = p.question;
            j["id"]        = split + "-check-" + std::to_string(written + 1);
            j["question"]  = muse::with_suffix({ q }, muse::contemplating::verifier_suffix(cand)).back().content;
            j["answer"]    = slipped ? "Verdict: wrong" : "Verdict: right";
            j["candidate"] = cand;
            j["slip"]      = slipped;
        } else if (format == "eval") {
            j["id"] = split + "-" + std::to_string(written + 1);
            j["question"] = p.question;
            j["answer"]   = p.answer;
        } else {
            j["question"]  = p.question;
            j["reasoning"] = p.reasoning;
            j["answer"]    = p.answer;
        }
        fprintf(f, "%s\n", j.dump().c_str());
        written++;
    }
    if (f != stdout && fclose(f) != 0) {
        fprintf(stderr, "muse-tasks: writing %s failed\n", out_path.c_str());
        return 1;
    }
    return 0;
}
