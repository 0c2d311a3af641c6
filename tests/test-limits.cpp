// core/limits.h, the one table of request limits: README shows exactly the table, and the API
// parser, `muse ask`'s flags, the orchestrator and the engine accept exactly its ranges.
//
// After changing the table, regenerate README's block with
//   MUSE_UPDATE_README=1 build/tests/test-limits --gtest_filter='limits.readme*'

#include "ask-flags.h"
#include "core/limits.h"
#include "engine/sequence.h"
#include "reasoning/orchestrator.h"
#include "server/openai-api.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

using namespace muse;
using json = nlohmann::json;

namespace {

const std::string k_readme   = std::string(MUSE_SOURCE_DIR) + "/README.md";
const std::string k_begin    = "<!-- limits:begin (generated from src/core/limits.h by tests/test-limits.cpp) -->\n";
const std::string k_end      = "<!-- limits:end -->";

std::string read_file(const std::string & path) {
    std::ifstream     in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool has(const std::string & s, const std::string & sub) {
    return s.find(sub) != std::string::npos;
}

// A value just outside [min, max] (or min itself when the range is open there), and not the
// special value (the seed's -1 is min - 1).
double below(const limit & l) {
    if (l.min_open) return l.min;
    const double v = l.integer ? l.min - 1 : l.min - 1e-4 * std::max(1.0, std::fabs(l.min));
    return l.special && v == l.special_value ? v - 1 : v;
}
double above(const limit & l) {
    return l.integer ? l.max + 1 : l.max + 1e-4 * std::max(1.0, std::fabs(l.max));
}
// The smallest value in range.
double lowest(const limit & l) {
    return l.min_open ? l.min + (l.integer ? 1 : 1e-4) : l.min;
}

std::string num(double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.10g", v);
    return buf;
}

// The API: widest caps, so that the table's ranges are what is checked.
api_limits widest() {
    api_limits lim;
    lim.max_tokens  = (int32_t) k_limit_max_tokens.max;
    lim.max_images  = (int32_t) k_limit_images.max;
    lim.max_agents  = (int32_t) k_limit_agents.max;
    lim.max_n       = (int32_t) k_limit_n.max;
    lim.max_budget  = (int32_t) k_limit_thinking_budget.max;
    return lim;
}

api_error api(const std::string & extra, chat_api_request & out, const api_limits & lim = widest()) {
    return parse_chat_request(json::parse(R"({"messages":[{"role":"user","content":"hi"}])" + extra + "}"), lim, out);
}

std::string ask_cli(std::vector<std::string> argv, cli::ask_flags & out) {
    argv.insert(argv.begin(), { "muse", "ask", "hi" });
    std::vector<char *> p;
    for (auto & a : argv) p.push_back(a.data());
    return cli::parse_ask_flags((int) p.size(), p.data(), 2, out);
}

// The numeric fields a client sets (not counts).
std::vector<const limit *> values(limit_front f) {
    std::vector<const limit *> out;
    for (const limit * l : k_request_limits) {
        if (!l->count && l->in(f)) out.push_back(l);
    }
    return out;
}

}  // namespace

TEST(limits, readme_shows_the_table) {
    std::string     readme = read_file(k_readme);
    const size_t    b      = readme.find(k_begin);
    const size_t    e      = readme.find(k_end);
    ASSERT_NE(b, std::string::npos) << "README.md has no line " << k_begin;
    ASSERT_NE(e, std::string::npos) << "README.md has no line " << k_end;
    const std::string shown    = readme.substr(b + k_begin.size(), e - b - k_begin.size());
    const std::string expected = limits_markdown();
    if (shown != expected && std::getenv("MUSE_UPDATE_README")) {
        readme.replace(b + k_begin.size(), e - b - k_begin.size(), expected);
        std::ofstream(k_readme, std::ios::binary) << readme;
        GTEST_SKIP() << "README.md's limits table rewritten";
    }
    EXPECT_EQ(shown, expected) << "README.md's limits table is not core/limits.h's; regenerate it with "
                                  "MUSE_UPDATE_README=1 build/tests/test-limits --gtest_filter='limits.readme*'";
}

// Prose elsewhere in README that states a limit's range or default must agree with the table:
// "`thinking_budget` (0–65536 tokens", "(`--agents`, default 4, 1–16)", "`stop` (up to 16)".
TEST(limits, readme_prose_agrees_with_the_table) {
    std::string readme = read_file(k_readme);
    const size_t b = readme.find(k_begin), e = readme.find(k_end);
    ASSERT_TRUE(b != std::string::npos && e != std::string::npos);
    readme.erase(b, e - b);
    for (char & c : readme) c = c == '\n' ? ' ' : c;
    // Unicode minus and en dash as ASCII, thousands separators dropped.
    readme = std::regex_replace(readme, std::regex("\xE2\x88\x92"), "-");
    readme = std::regex_replace(readme, std::regex("\xE2\x80\x93"), "~");
    readme = std::regex_replace(readme, std::regex("(\\d),(\\d{3})"), "$1$2");

    const std::regex range_re("(-?[0-9.]+)\\s*~\\s*(-?[0-9.]+)");
    const std::regex default_re("default (-?[0-9.]+)");
    const std::regex up_to_re("(?:up to|at most) (-?[0-9.]+)");
    // A name two limits share (--stop: count and bytes) says too little to check.
    std::map<std::string, int> uses;
    for (const limit * l : k_request_limits) {
        uses[l->name]++;
        uses[l->flag]++;
    }
    int checked = 0;
    for (const limit * l : k_request_limits) {
        for (const std::string & name : { std::string(l->name), std::string(l->flag) }) {
            if (name.empty() || uses[name] > 1) continue;
            const std::string quoted = "`" + name + "`";
            for (size_t at = readme.find(quoted); at != std::string::npos; at = readme.find(quoted, at + 1)) {
                // What is said right after the name: up to the next code span or sentence end.
                std::string window = readme.substr(at + quoted.size(), 60);
                window = window.substr(0, std::min(window.find('`'), window.find(". ")));
                const std::string where = "README: " + quoted + window;
                std::smatch m;
                if (std::regex_search(window, m, range_re)) {
                    EXPECT_EQ(std::stod(m[1]), l->min) << where;
                    EXPECT_EQ(std::stod(m[2]), l->max) << where;
                    checked++;
                }
                if (std::regex_search(window, m, default_re)) {
                    EXPECT_EQ(std::stod(m[1]), l->def) << where;
                    checked++;
                }
                if (std::regex_search(window, m, up_to_re)) {
                    EXPECT_EQ(std::stod(m[1]), l->max) << where;
                    checked++;
                }
            }
        }
    }
    EXPECT_GE(checked, 6) << "the prose names ranges and defaults; did the patterns stop matching?";
}

TEST(limits, table_is_consistent) {
    for (const limit * l : k_request_limits) {
        SCOPED_TRACE(l->name);
        EXPECT_LT(l->min, l->max);
        EXPECT_TRUE(l->fronts & (FRONT_API | FRONT_CLI));
        EXPECT_EQ(l->in(FRONT_CLI), *l->flag != 0);
        if (!l->count && !l->def_text) {
            EXPECT_TRUE(l->contains(l->def)) << "the default lies in the range";
        }
        if (l->special) {
            EXPECT_FALSE(l->contains(l->special_value)) << "a special value lies outside the range";
        }
        if (*l->serve_flag) {
            EXPECT_TRUE(l->contains(l->serve_default));
        }
    }
    // reasoning_effort's budgets are thinking budgets too.
    for (const char * effort : { "none", "minimal", "low", "medium", "high", "xhigh" }) {
        ask_mode mode;
        int32_t  budget = -1;
        ASSERT_TRUE(effort_mode(effort, mode, budget));
        EXPECT_TRUE(k_limit_thinking_budget.contains(budget)) << effort;
    }
    EXPECT_EQ(limit_problem(k_limit_agents, 17), "agents must be an integer in [1, 16], got 17");
    EXPECT_EQ(limit_problem(k_limit_agents, 2.5), "agents must be an integer in [1, 16], got 2.5");
    EXPECT_EQ(limit_problem(k_limit_top_p, 0), "top_p must be a number in (0, 1], got 0");
    EXPECT_EQ(limit_problem(k_limit_seed, -1), "");
    EXPECT_EQ(limit_problem(k_limit_repeat_penalty, 0.01f), "") << "the float nearest a bound is the bound";
    EXPECT_NE(limit_problem(k_limit_temperature, NAN), "");
}

TEST(limits, defaults_come_from_the_table) {
    const ask_options o;
    EXPECT_EQ(o.agents, k_limit_agents.def);
    EXPECT_EQ(o.budget, k_limit_thinking_budget.def);
    EXPECT_EQ(o.answer_tokens, k_limit_max_tokens.def);
    EXPECT_EQ(o.max_plan_tasks, k_limit_max_plan_tasks.def);
    EXPECT_EQ(o.max_tool_steps, k_limit_max_tool_steps.def);
    EXPECT_FLOAT_EQ(o.prune_threshold, k_limit_prune_threshold.def);
    EXPECT_FLOAT_EQ(o.sampling.temperature, k_limit_temperature.def);
    EXPECT_FLOAT_EQ(o.sampling.top_p, k_limit_top_p.def);
    EXPECT_EQ(o.sampling.top_k, k_limit_top_k.def);
    EXPECT_FLOAT_EQ(o.sampling.min_p, k_limit_min_p.def);
    EXPECT_FLOAT_EQ(o.sampling.repeat_penalty, k_limit_repeat_penalty.def);
    EXPECT_EQ(o.sampling.seed, 0xFFFFFFFFu) << "random";

    // Both front ends start from the same options.
    chat_api_request r;
    ASSERT_FALSE(api("", r, api_limits{}));
    cli::ask_flags f;
    ASSERT_EQ(ask_cli({}, f), "");
    for (const ask_options * p : { &r.ask.opt, &f.opt }) {
        EXPECT_EQ(p->agents, o.agents);
        EXPECT_EQ(p->budget, o.budget);
        EXPECT_EQ(p->answer_tokens, o.answer_tokens);
        EXPECT_FLOAT_EQ(p->sampling.temperature, o.sampling.temperature);
        EXPECT_EQ(p->sampling.seed, o.sampling.seed);
    }
    EXPECT_EQ(r.n, k_limit_n.def);

    // A server's default caps lie inside the table.
    const api_limits lim;
    EXPECT_EQ(lim.max_tokens, k_limit_max_tokens.serve_default);
    EXPECT_EQ(lim.max_agents, k_limit_agents.serve_default);
    EXPECT_EQ(lim.max_images, k_limit_images.serve_default);
    EXPECT_EQ(lim.max_budget, k_limit_thinking_budget.max);
}

TEST(limits, api_accepts_exactly_the_table_ranges) {
    for (const limit * l : values(FRONT_API)) {
        SCOPED_TRACE(l->name);
        auto field = [&](double v) { return ",\"" + std::string(l->name) + "\":" + num(v); };
        chat_api_request r;
        EXPECT_FALSE(api(field(lowest(*l)), r)) << api(field(lowest(*l)), r).message;
        EXPECT_FALSE(api(field(l->max), r)) << api(field(l->max), r).message;
        if (l->special) {
            EXPECT_FALSE(api(field(l->special_value), r)) << l->special;
        }
        for (double bad : { below(*l), above(*l) }) {
            api_error e = api(field(bad), r);
            ASSERT_TRUE(e) << num(bad);
            EXPECT_EQ(e.status, 400);
            EXPECT_EQ(e.param, l->name);
            EXPECT_TRUE(has(e.message, l->name)) << e.message;
            EXPECT_TRUE(has(e.message, limit_range_text(*l))) << e.message;
        }
    }
    // Values land where the agents read them.
    chat_api_request r;
    ASSERT_FALSE(api(R"(,"thinking_budget":65536,"agents":16,"max_completion_tokens":1048576,"seed":-1,"top_p":1)", r));
    EXPECT_EQ(r.ask.opt.budget, 65536);
    EXPECT_EQ(r.ask.opt.agents, 16);
    EXPECT_EQ(r.ask.opt.answer_tokens, 1 << 20);
    EXPECT_EQ(r.ask.opt.sampling.seed, 0xFFFFFFFFu);
    ASSERT_FALSE(api(R"(,"max_tokens":-1)", r, api_limits{}));
    EXPECT_EQ(r.ask.opt.answer_tokens, api_limits{}.max_tokens) << "-1: as many as the server allows";

    // A server's lower caps narrow the table's range, and the message says so.
    api_limits lim;
    lim.max_agents = 3;
    api_error e = api(R"(,"agents":4)", r, lim);
    ASSERT_TRUE(e);
    EXPECT_TRUE(has(e.message, "[1, 3]")) << e.message;
}

TEST(limits, api_counts_stop_at_the_table) {
    chat_api_request r;
    auto stops = [](size_t n, size_t bytes) {
        json a = json::array();
        for (size_t i = 0; i < n; ++i) a.push_back(std::string(bytes, (char) ('a' + i % 26)));
        return ",\"stop\":" + a.dump();
    };
    const size_t n = (size_t) k_limit_stop.max, lo = (size_t) k_limit_stop_bytes.min, hi = (size_t) k_limit_stop_bytes.max;
    EXPECT_FALSE(api(stops(n, hi), r));
    EXPECT_EQ(r.ask.opt.stop.size(), n);
    EXPECT_FALSE(api(stops(1, lo), r));
    for (const std::string & bad : { stops(n + 1, 4), stops(1, hi + 1), stops(1, lo - 1) }) {
        api_error e = api(bad, r);
        EXPECT_EQ(e.param, "stop") << bad.substr(0, 40);
        EXPECT_TRUE(has(e.message, "stop")) << e.message;
    }

    auto messages = [](size_t n) {
        json m = json::array();
        for (size_t i = 0; i < n; ++i) m.push_back({ { "role", "user" }, { "content", "hi" } });
        return json{ { "messages", m } };
    };
    EXPECT_FALSE(parse_chat_request(messages((size_t) k_limit_messages.max), widest(), r));
    EXPECT_EQ(parse_chat_request(messages((size_t) k_limit_messages.max + 1), widest(), r).param, "messages");
    EXPECT_EQ(parse_chat_request(messages(0), widest(), r).param, "messages");

    auto tools = [](size_t n) {
        json t = json::array();
        for (size_t i = 0; i < n; ++i) t.push_back({ { "type", "function" }, { "function", { { "name", "t" + std::to_string(i) } } } });
        return ",\"tools\":" + t.dump();
    };
    EXPECT_FALSE(api(tools((size_t) k_limit_tools.max), r));
    EXPECT_EQ(api(tools((size_t) k_limit_tools.max + 1), r).param, "tools");

    auto images = [](size_t n) {
        json c = json::array({ { { "type", "text" }, { "text", "look" } } });
        for (size_t i = 0; i < n; ++i) c.push_back({ { "type", "image_url" }, { "image_url", { { "url", "data:x" } } } });
        return json{ { "messages", json::array({ { { "role", "user" }, { "content", c } } }) } };
    };
    EXPECT_FALSE(parse_chat_request(images((size_t) k_limit_images.max), widest(), r));
    api_error e = parse_chat_request(images((size_t) k_limit_images.max + 1), widest(), r);
    EXPECT_TRUE(has(e.message, "images")) << e.message;

    auto files = [](size_t n) {
        json a = json::array();
        for (size_t i = 0; i < n; ++i) a.push_back("file-" + std::to_string(i));
        return ",\"attachments\":" + a.dump();
    };
    EXPECT_FALSE(api(files((size_t) k_limit_attachments.max), r));
    EXPECT_EQ(api(files((size_t) k_limit_attachments.max + 1), r).param, "attachments");

    const std::string salt((size_t) k_limit_cache_salt.max, 's');
    EXPECT_FALSE(api(",\"cache_salt\":\"" + salt + "\"", r));
    EXPECT_EQ(api(",\"cache_salt\":\"" + salt + "s\"", r).param, "cache_salt");
}

TEST(limits, cli_accepts_exactly_the_table_ranges) {
    for (const limit * l : values(FRONT_CLI)) {
        SCOPED_TRACE(l->flag);
        cli::ask_flags f;
        EXPECT_EQ(ask_cli({ l->flag, num(lowest(*l)) }, f), "");
        EXPECT_EQ(ask_cli({ l->flag, num(l->max) }, f), "");
        if (l->special) {
            EXPECT_EQ(ask_cli({ l->flag, num(l->special_value) }, f), "") << l->special;
        }
        for (double bad : { below(*l), above(*l) }) {
            const std::string e = ask_cli({ l->flag, num(bad) }, f);
            EXPECT_TRUE(has(e, l->flag)) << num(bad) << ": " << e;
            EXPECT_TRUE(has(e, limit_range_text(*l))) << e;
        }
    }
    cli::ask_flags f;
    ASSERT_EQ(ask_cli({ "--budget", "65536", "--agents", "16", "-n", "-1", "--seed", "4294967294", "--top-p", "1" }, f), "");
    EXPECT_EQ(f.opt.budget, 65536);
    EXPECT_EQ(f.opt.agents, 16);
    EXPECT_EQ(f.opt.answer_tokens, 1 << 20) << "-1: the most";
    EXPECT_EQ(f.opt.sampling.seed, 4294967294u);
    EXPECT_NE(ask_cli({ "-n", "0" }, f), "");
}

TEST(limits, cli_counts_stop_at_the_table) {
    auto repeated = [](const char * flag, size_t n, size_t bytes) {
        std::vector<std::string> a;
        for (size_t i = 0; i < n; ++i) {
            a.push_back(flag);
            a.push_back(std::string(bytes, (char) ('a' + i % 26)));
        }
        return a;
    };
    cli::ask_flags f;
    const size_t   n = (size_t) k_limit_stop.max, hi = (size_t) k_limit_stop_bytes.max;
    EXPECT_EQ(ask_cli(repeated("--stop", n, hi), f), "");
    EXPECT_EQ(f.opt.stop.size(), n);
    for (const auto & bad : { repeated("--stop", n + 1, 4), repeated("--stop", 1, hi + 1), repeated("--stop", 1, 0) }) {
        EXPECT_TRUE(has(ask_cli(bad, f), "--stop")) << ask_cli(bad, f);
    }
    for (const limit * l : { &k_limit_images, &k_limit_tables }) {
        EXPECT_EQ(ask_cli(repeated(l->flag, (size_t) l->max, 8), f), "") << l->flag;
        const std::string e = ask_cli(repeated(l->flag, (size_t) l->max + 1, 8), f);
        EXPECT_TRUE(has(e, l->flag)) << e;
    }
}

// Below the front ends: the orchestrator and the engine hold the same ranges.
TEST(limits, orchestrator_and_engine_check_the_same_ranges) {
    struct field {
        const limit * l;
        void (*set)(ask_options &, double);
    };
    const std::vector<field> fields = {
        { &k_limit_agents, [](ask_options & o, double v) { o.agents = (int32_t) v; } },
        { &k_limit_thinking_budget, [](ask_options & o, double v) { o.budget = (int32_t) v; } },
        { &k_limit_max_tokens, [](ask_options & o, double v) { o.answer_tokens = (int32_t) v; } },
        { &k_limit_max_plan_tasks, [](ask_options & o, double v) { o.max_plan_tasks = (int32_t) v; } },
        { &k_limit_max_tool_steps, [](ask_options & o, double v) { o.max_tool_steps = (int32_t) v; } },
        { &k_limit_prune_threshold, [](ask_options & o, double v) { o.prune_threshold = (float) v; } },
        { &k_limit_temperature, [](ask_options & o, double v) { o.sampling.temperature = (float) v; } },
        { &k_limit_top_p, [](ask_options & o, double v) { o.sampling.top_p = (float) v; } },
        { &k_limit_top_k, [](ask_options & o, double v) { o.sampling.top_k = (int32_t) v; } },
        { &k_limit_min_p, [](ask_options & o, double v) { o.sampling.min_p = (float) v; } },
        { &k_limit_repeat_penalty, [](ask_options & o, double v) { o.sampling.repeat_penalty = (float) v; } },
        { &k_limit_frequency_penalty, [](ask_options & o, double v) { o.sampling.frequency_penalty = (float) v; } },
        { &k_limit_presence_penalty, [](ask_options & o, double v) { o.sampling.presence_penalty = (float) v; } },
    };
    for (const field & fd : fields) {
        SCOPED_TRACE(fd.l->name);
        for (double ok : { lowest(*fd.l), fd.l->max }) {
            ask_options o;
            fd.set(o, ok);
            EXPECT_EQ(validate(o), "") << num(ok);
            EXPECT_EQ(validate(o.sampling), "") << num(ok);
        }
        for (double bad : { below(*fd.l), above(*fd.l) }) {
            ask_options o;
            fd.set(o, bad);
            EXPECT_TRUE(has(validate(o), fd.l->name)) << num(bad) << ": " << validate(o);
        }
    }
    ask_options o;
    o.stop.assign((size_t) k_limit_stop.max, "x");
    EXPECT_EQ(validate(o), "");
    o.stop.push_back("x");
    EXPECT_TRUE(has(validate(o), "stop"));
    o.stop = { std::string((size_t) k_limit_stop_bytes.max + 1, 'x') };
    EXPECT_TRUE(has(validate(o), "stop"));

    // The engine's own caps have room for what the front ends allow plus what modes add.
    EXPECT_GE(k_engine_max_stops, (size_t) k_limit_stop.max + k_max_template_stops);
    EXPECT_GE(k_engine_max_stop_bytes, (size_t) k_limit_stop_bytes.max);
}
