// muse eval's scoring and task files, on the scripted backend: which answers count as right,
// the per-mode figures, a vote scored on its winner, bad task files named by line, cancel.

#include "app/eval.h"
#include "reasoning/contemplating/prompts.h"
#include "backend/scripted-backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>

using namespace muse;

namespace {

scripted_reply reply(std::string content, std::string reasoning = "") {
    scripted_reply r;
    r.content           = std::move(content);
    r.reasoning         = std::move(reasoning);
    return r;
}

std::string last_user(const chat_request & r) {
    for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it) {
        if (it->role == "user") return it->content;
    }
    return "";
}

bool has(const std::string & s, const std::string & what) { return s.find(what) != std::string::npos; }

const char * k_tasks =
    "{\"question\": \"What is 2 + 2?\", \"answer\": \"4\"}\n"
    "\n"
    "{\"id\": \"gsm-1\", \"question\": \"Tom has 3 apples and buys 4. How many?\", \"answer\": \"3 + 4 = 7\\n#### 7\"}\n"
    "{\"question\": \"What is 1000 + 234?\", \"answer\": 1234}\n"
    "{\"question\": \"What is 9 - 5?\", \"answer\": \"4\"}\n";

TEST(eval, task_files_read_gsm8k_and_bare_answers) {
    std::vector<eval_task> t;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 0, t));
    ASSERT_EQ(t.size(), 4u);
    EXPECT_EQ(t[0].id, "1");
    EXPECT_EQ(t[0].expected, "4");
    EXPECT_EQ(t[1].id, "gsm-1");
    EXPECT_EQ(t[1].line, 3);
    EXPECT_EQ(t[1].expected, "7") << "GSM8K: scored on what follows ####";
    EXPECT_EQ(t[2].expected, "1234") << "a number answer";
    std::vector<eval_task> two;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 2, two));
    EXPECT_EQ(two.size(), 2u) << "--limit";
    EXPECT_EQ(eval_answer_key("Final answer: 1,234"), "1234");
}

TEST(eval, bad_task_files_name_the_line) {
    std::vector<eval_task> t = { eval_task{} };
    auto fails = [&](const std::string & text, const std::string & want) {
        error e = parse_eval_tasks(text, "t.jsonl", 0, t);
        EXPECT_EQ(e.code, ERROR_BAD_INPUT) << text;
        EXPECT_NE(e.message.find(want), std::string::npos) << e.message;
    };
    fails("{\"question\": \"q\", \"answer\": \"1\"}\nnot json\n", "t.jsonl: line 2: not a JSON object");
    fails("{\"answer\": \"1\"}\n", "line 1: \"question\" must be a non-empty string");
    fails("{\"question\": \"q\"}\n", "line 1: \"answer\" must be a string or a number");
    fails("{\"question\": \"q\", \"answer\": [1]}\n", "\"answer\" must be");
    fails("{\"question\": \"q\", \"answer\": \"\"}\n", "no answer can be read");
    fails(std::string(100, '[') + "\n", "line 1: nested more than 8 levels");
    fails("{\"question\": \"\xff\", \"answer\": \"1\"}\n", "line 1: not valid UTF-8");
    fails("{\"question\": \"" + std::string(70000, 'x') + "\", \"answer\": \"1\"}\n", "over the 65536-byte limit");
    fails("\n\n", "no tasks");
    EXPECT_EQ(t.size(), 1u) << "a failed parse leaves the output as it was";
    error e = read_eval_tasks("/nonexistent/tasks.jsonl", 0, t);
    EXPECT_EQ(e.code, ERROR_FILE_NOT_FOUND);
}

// The scripted model answers right when it reasons (thinking) and wrong when it does not
// (instant), except for 2 + 2: the table must say 1/4 and 4/4.
TEST(eval, modes_are_scored_by_exact_answer) {
    std::vector<eval_task> tasks;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 0, tasks));
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        const std::string u = last_user(q);
        const bool reasons = q.reasoning == REASONING_ON;
        std::string right = has(u, "2 + 2") ? "4" : has(u, "apples") ? "7" : has(u, "1000") ? "1,234" : "4";
        if (reasons) return reply("Final answer: " + right, "step by step");
        return reply(has(u, "2 + 2") ? "4" : "Final answer: 99");
    });
    assistant   door(be);
    eval_params p;
    p.modes = { MODE_INSTANT, MODE_THINKING };
    p.opt.tools.clear();
    eval_report r;
    int         calls = 0, last_total = 0;
    ASSERT_FALSE(run_eval(door, tasks, p, [&](int done, int total) { calls = done; last_total = total; }, cancel_token(), r));
    ASSERT_EQ(r.modes.size(), 2u);
    EXPECT_EQ(calls, 8);
    EXPECT_EQ(last_total, 8);
    EXPECT_EQ(r.modes[0].mode, MODE_INSTANT);
    EXPECT_EQ(r.modes[0].correct, 1);
    EXPECT_DOUBLE_EQ(r.modes[0].accuracy, 0.25);
    EXPECT_EQ(r.modes[1].correct, 4) << "\"1,234\" is 1234";
    EXPECT_GT(r.modes[1].tokens_per_question, 0);
    ASSERT_EQ(r.items.size(), 8u);
    EXPECT_EQ(r.items[1].got, "99");
    EXPECT_FALSE(r.items[1].correct);

    const std::string table = eval_table(r);
    EXPECT_NE(table.find("| instant       |         4 |      25.0% (1/4) |"), std::string::npos) << table;
    EXPECT_NE(table.find("| thinking      |         4 |     100.0% (4/4) |"), std::string::npos) << table;
    const auto j = to_json(r, tasks);
    EXPECT_EQ(j["modes"][1]["correct"], 4);
    EXPECT_EQ(j["items"][1]["id"], "gsm-1");
    EXPECT_EQ(j["items"][1]["expected"], "7");
}

// A fixed seed gives each question its own stream (the same on a rerun); a random seed stays
// random. One stream for every question made a seed's unlucky draw at some step hit that step
// of every question: one sampled Thinking run of Muse-Tiny scored 61% with a seed and 90-92%
// with two others.
TEST(eval, a_fixed_seed_gives_each_question_its_own_stream) {
    std::vector<eval_task> tasks;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 0, tasks));
    auto seeds_of = [&](uint32_t seed) {
        std::vector<uint32_t> seen;
        scripted_backend      be;
        be.set_responder([&](const chat_request & q) {
            seen.push_back(q.sampling.seed);
            return reply("Final answer: 4", "step by step");
        });
        assistant   door(be);
        eval_params p;
        p.modes = { MODE_THINKING };
        p.opt.tools.clear();
        p.opt.sampling.seed = seed;
        eval_report r;
        EXPECT_FALSE(run_eval(door, tasks, p, nullptr, cancel_token(), r));
        return seen;
    };
    const std::vector<uint32_t> a = seeds_of(7), b = seeds_of(7), c = seeds_of(8);
    ASSERT_EQ(a.size(), tasks.size());
    EXPECT_EQ(a, b) << "a rerun draws the same";
    EXPECT_NE(a, c);
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_NE(a[i], 0xFFFFFFFFu) << "a fixed seed never becomes the random one";
        for (size_t j = 0; j < i; ++j) EXPECT_NE(a[i], a[j]) << "questions " << i << " and " << j << " share a stream";
    }
    // the random seed is passed on as such (the door draws a fresh one for every request)
    EXPECT_EQ(eval_question_seed(0xFFFFFFFFu, 3), 0xFFFFFFFFu);
    EXPECT_NE(seeds_of(0xFFFFFFFFu), seeds_of(0xFFFFFFFFu)) << "a random seed stays random";
    EXPECT_EQ(eval_question_seed(7, 1), eval_question_seed(7, 1));
    EXPECT_NE(eval_question_seed(7, 1), eval_question_seed(7, 2));
    EXPECT_NE(eval_question_seed(7, 1), eval_question_seed(8, 1));
}

// Contemplating is scored on the vote's winner: 3 of 4 solvers right wins, agreement 0.75.
TEST(eval, contemplating_is_scored_on_the_vote) {
    std::vector<eval_task> tasks;
    ASSERT_FALSE(parse_eval_tasks("{\"question\": \"What is 2 + 2?\", \"answer\": \"4\"}\n", "t", 0, tasks));
    scripted_backend be;
    std::atomic<int> solver{ 0 };
    be.set_responder([&](const chat_request & q) {
        if (q.max_tokens == 0) return reply("");  // the shared prefix
        if (!q.assistant_prefix.empty()) {  // a solver: its role opens its reasoning
            return reply(q.assistant_prefix == muse::contemplating::solver_opening(1) ? "Final answer: 5"
                                                                                      : "Final answer: 4",
                         "thinking");
        }
        return reply("Final answer: 4");
    });
    (void) solver;
    assistant   door(be);
    eval_params p;
    p.modes = { MODE_CONTEMPLATING };
    p.opt.tools.clear();
    p.opt.planner = false;
    p.opt.agents  = 4;
    eval_report r;
    ASSERT_FALSE(run_eval(door, tasks, p, nullptr, cancel_token(), r));
    ASSERT_EQ(r.items.size(), 1u);
    EXPECT_TRUE(r.items[0].voted);
    EXPECT_TRUE(r.items[0].correct);
    EXPECT_DOUBLE_EQ(r.items[0].agreement, 0.75);
    EXPECT_EQ(r.modes[0].voted, 1);
    EXPECT_NE(eval_table(r).find("0.75"), std::string::npos) << eval_table(r);
}

TEST(eval, a_cancel_stops_and_keeps_what_was_answered) {
    std::vector<eval_task> tasks;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 0, tasks));
    scripted_backend be;
    be.set_responder([](const chat_request &) { return reply("4"); });
    assistant     door(be);
    eval_params   p;
    p.modes = { MODE_INSTANT };
    p.opt.tools.clear();
    cancel_source stop;
    eval_report   r;
    ASSERT_FALSE(run_eval(door, tasks, p, [&](int done, int) { if (done == 2) stop.request_stop(); }, stop.get_token(), r));
    EXPECT_TRUE(r.cancelled);
    ASSERT_EQ(r.modes.size(), 1u);
    EXPECT_EQ(r.modes[0].questions, 2);
}

TEST(eval, a_refused_option_is_an_error_before_anything_runs) {
    std::vector<eval_task> tasks;
    ASSERT_FALSE(parse_eval_tasks(k_tasks, "t.jsonl", 0, tasks));
    scripted_backend be;
    assistant   door(be);
    eval_params p;
    p.opt.agents = 99;
    eval_report r;
    error e = run_eval(door, tasks, p, nullptr, cancel_token(), r);
    EXPECT_TRUE(e);
    EXPECT_NE(e.message.find("agents"), std::string::npos) << e.message;
    EXPECT_TRUE(be.requests().empty());
    p.modes.clear();
    EXPECT_TRUE(run_eval(door, tasks, p, nullptr, cancel_token(), r));
}

}  // namespace
