// The reasoning modes' orchestration on the scripted backend: which requests each mode makes,
// in which order, and how their answers are combined.

#include "backend/scripted-backend.h"
#include "core/utf8.h"
#include "agents/tools/query-table.h"
#include "reasoning/contemplating/prompts.h"
#include "reasoning/orchestrator.h"
#include "reasoning/result-json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <thread>

using namespace muse;

namespace {

bool has(const std::string & s, const std::string & part) {
    return s.find(part) != std::string::npos;
}

std::string last_user(const chat_request & r) {
    return r.messages.empty() ? "" : r.messages.back().content;
}

bool is_prefix(const chat_request & r) { return r.max_tokens == 0; }
bool is_planner(const chat_request & r) { return has(last_user(r), "Plan how a team"); }
int  solver_slot(const chat_request & r);
bool is_solver(const chat_request & r) { return solver_slot(r) >= 0; }
bool is_refiner(const chat_request & r) { return has(last_user(r), "Your earlier answer"); }
bool is_synth(const chat_request & r) { return has(last_user(r), "Write the one best answer"); }
bool is_verifier(const chat_request & r) { return has(last_user(r), "Check the answer "); }

// The solver's position (0-based), from the role that opens its reasoning (tests use K <= 8).
int solver_slot(const chat_request & r) {
    for (int i = 0; i < 8; ++i) {
        if (r.assistant_prefix == muse::contemplating::solver_opening(i)) return i;
    }
    return -1;
}

scripted_reply reply(std::string content, std::string reasoning = "", std::vector<float> lps = {}) {
    scripted_reply r;
    r.content   = std::move(content);
    r.reasoning = std::move(reasoning);
    r.logprobs  = std::move(lps);
    return r;
}

ask_request contemplate(const std::string & q, int k = 4) {
    ask_request req;
    req.messages       = { { "user", q } };
    req.opt.mode       = MODE_CONTEMPLATING;
    req.opt.agents     = k;
    req.opt.planner    = false;
    req.opt.budget     = 64;
    req.opt.sampling.seed = 42;
    return req;
}

std::string words(int n, const char * w = "step") {
    std::string s;
    for (int i = 0; i < n; ++i) {
        s += (i ? " " : "") + std::string(w);
    }
    return s;
}

}  // namespace

TEST(orchestrator, rejects_out_of_range_options) {
    scripted_backend be;
    orchestrator     orch(be, builtin_tools());
    ask_request      req = contemplate("q");
    req.opt.agents       = 0;
    ask_result r         = orch.run(req);
    ASSERT_TRUE(r.err);
    EXPECT_TRUE(has(r.err.message, "agents")) << r.err.message;
    req.opt.agents = 17;
    EXPECT_TRUE(has(orch.run(req).err.message, "agents"));
    req.opt.agents = 4;
    req.opt.budget = -1;
    EXPECT_TRUE(has(orch.run(req).err.message, "budget"));
    req.opt.budget                = 10;
    req.opt.sampling.temperature  = 500;
    EXPECT_TRUE(has(orch.run(req).err.message, "temperature"));
    req.opt.sampling.temperature = 0.5f;
    req.opt.tools                = { "teleporter" };
    EXPECT_TRUE(has(orch.run(req).err.message, "teleporter"));
    EXPECT_TRUE(be.requests().empty()) << "nothing may run for a rejected request";
}

TEST(orchestrator, instant_turns_reasoning_off) {
    scripted_backend be({ reply("Paris.", "should not appear") });
    orchestrator     orch(be, builtin_tools());
    ask_request      req;
    req.messages = { { "user", "Capital of France?" } };
    req.opt.mode = MODE_INSTANT;
    ask_result r = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.mode, MODE_INSTANT);
    EXPECT_EQ(r.answer, "Paris.");
    EXPECT_EQ(r.reasoning, "");
    ASSERT_EQ(be.requests().size(), 1u);
    EXPECT_EQ(be.requests()[0].reasoning, REASONING_OFF);
    EXPECT_EQ(be.requests()[0].reasoning_strength, "low");
}

TEST(orchestrator, thinking_reasons_within_its_budget) {
    scripted_backend be({ reply("42", words(500)) });
    orchestrator     orch(be, builtin_tools());
    ask_request      req;
    req.messages   = { { "user", "Think hard" } };
    req.opt.mode   = MODE_THINKING;
    req.opt.budget = 20;
    ask_result r   = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    ASSERT_EQ(be.requests().size(), 1u);
    const chat_request q = be.requests()[0];
    EXPECT_EQ(q.reasoning, REASONING_ON);
    EXPECT_EQ(q.reasoning_budget, 20);
    EXPECT_EQ(q.reasoning_strength, "medium");
    EXPECT_EQ(r.reasoning, words(20)) << "budget forcing ends reasoning at 20 tokens";
    EXPECT_EQ(r.answer, "42") << "the answer follows the forced end of reasoning";
}

TEST(orchestrator, contemplating_forks_every_solver_from_one_prefix) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 7", "because"); });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("What is 3 + 4?"));
    ASSERT_FALSE(r.err) << r.err.message;
    auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 5u);  // without a planner: one prefix (conversation + answer format), then 4 solvers
    ASSERT_TRUE(is_prefix(reqs[0]));
    EXPECT_TRUE(reqs[0].retain);
    EXPECT_TRUE(has(last_user(reqs[0]), "Final answer:")) << "the answer format is in the shared part";
    EXPECT_FALSE(has(last_user(reqs[0]), "backward verifier")) << "roles are each agent's own";
    std::set<std::string> openings;
    for (size_t i = 1; i < reqs.size(); ++i) {
        openings.insert(reqs[i].assistant_prefix);
    }
    EXPECT_EQ(openings.count("Backward verifier:"), 1u) << "a role opens the agent's reasoning";
    int solvers = 0;
    for (size_t i = 1; i < reqs.size(); ++i) {
        ASSERT_TRUE(is_solver(reqs[i]));
        EXPECT_EQ(reqs[i].fork_from, 1u) << "solver " << i << " forks the prefix (stream 1)";
        EXPECT_EQ(last_user(reqs[i]), last_user(reqs[0])) << "a solver's conversation is the prefix's";
        EXPECT_EQ(reqs[i].reasoning, reqs[0].reasoning) << "and so is its template tail";
        EXPECT_EQ(reqs[i].reasoning_strength, "high");
        EXPECT_TRUE(has(last_user(reqs[i]), "What is 3 + 4?"));
        solvers++;
    }
    EXPECT_EQ(solvers, 4);
    // Distinct roles, seeds and temperatures.
    std::set<std::string> roles;
    std::set<uint32_t>    seeds;
    std::set<float>       temps;
    for (const auto & t : r.agents) {
        roles.insert(t.role);
        seeds.insert(t.seed);
        temps.insert(t.temperature);
    }
    EXPECT_EQ(roles.size(), 4u);
    EXPECT_EQ(seeds.size(), 4u);
    EXPECT_GE(temps.size(), 3u);
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_EQ(r.answer, "7");
    EXPECT_DOUBLE_EQ(r.confidence, 1.0);
    EXPECT_GT(r.use.shared_prefix_tokens, 0);
}

// A backend that cannot fork (a remote server) still runs contemplating: every solver carries
// the whole conversation, and no request asks it to fork or retain (it would refuse).
TEST(orchestrator, contemplating_runs_on_a_backend_without_fork) {
    scripted_backend be;
    backend_caps     caps = be.caps();
    caps.fork             = false;
    be.set_caps(caps);
    be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 7", "because"); });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("What is 3 + 4?"));
    ASSERT_FALSE(r.err) << r.err.message;
    int solvers = 0;
    for (const auto & q : be.requests()) {
        EXPECT_EQ(q.fork_from, 0u);
        EXPECT_FALSE(q.retain);
        if (is_solver(q)) {
            solvers++;
            EXPECT_TRUE(has(last_user(q), "What is 3 + 4?")) << "the whole conversation, not a suffix";
        }
    }
    EXPECT_EQ(solvers, 4);
    for (const auto & t : r.agents) EXPECT_FALSE(t.err) << t.err.message;
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_EQ(r.answer, "7");

    // The same backend refuses a fork when asked directly: the orchestrator is what kept it out.
    chat_request direct;
    direct.messages  = { { "user", "x" } };
    direct.fork_from = 1;
    EXPECT_TRUE(collect(*be.start(direct)).err);
}

// Every stream of a request carries its cache salt, whichever step starts it (prefix, solvers,
// tool-step continuations), so the engine never shares cells across users.
TEST(orchestrator, every_stream_carries_the_requests_cache_salt) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 7", "because"); });
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate("What is 3 + 4?");
    req.cache_salt   = "user-a";
    ASSERT_FALSE(orch.run(req).err);

    scripted_backend tools_be;
    scripted_reply   call;
    call.tool_calls = { { "c1", "calculator", R"({"expression":"3 + 4"})" } };
    tools_be.add(call);
    tools_be.add(reply("7"));
    orchestrator tool_orch(tools_be, builtin_tools());
    ask_request  treq;
    treq.messages   = { { "user", "3 + 4?" } };
    treq.opt.mode   = MODE_THINKING;
    treq.cache_salt = "user-a";
    ASSERT_FALSE(tool_orch.run(treq).err);

    auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 5u);
    auto treqs = tools_be.requests();
    ASSERT_EQ(treqs.size(), 2u);
    reqs.insert(reqs.end(), treqs.begin(), treqs.end());
    for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_EQ(reqs[i].cache_salt, "user-a") << "stream " << i;
    }
}

TEST(orchestrator, vote_normalises_numbers_and_reports_agreement) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        static const char * answers[] = { "Final answer: 1,000", "The answer is 1000.", "Final answer: 1000.0", "Final answer: 999" };
        return is_prefix(q) ? reply("") : reply(answers[solver_slot(q)], "r");
    });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("How many?"));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_EQ(r.vote.votes, 3);
    EXPECT_EQ(r.vote.normalized, "1000");
    EXPECT_FALSE(r.vote.tie);
    EXPECT_DOUBLE_EQ(r.confidence, 0.75);
    EXPECT_EQ(r.answer, "1,000") << "the first agent's wording of the winner";
}

TEST(orchestrator, tie_is_broken_by_confidence) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) {
            return reply("");
        }
        const int  s   = solver_slot(q);
        const bool sure = s == 2 || s == 3;  // the later two agents say B, with higher confidence
        return reply(sure ? "Final answer: B" : "Final answer: A", "x y z", std::vector<float>(4, sure ? -0.1f : -1.5f));
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate("Pick A or B");
    req.opt.prune    = false;
    req.opt.vote     = muse::VOTE_MAJORITY;  // one ballot each: 2 against 2
    ask_result r     = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_TRUE(r.vote.tie);
    EXPECT_EQ(r.vote.tie_break, "confidence");
    EXPECT_EQ(r.vote.display.back(), 'B') << r.vote.display;
    EXPECT_DOUBLE_EQ(r.confidence, 0.5);
}

TEST(orchestrator, weighted_vote_counts_each_answer_as_sure_as_its_weakest_stretch) {
    // Three agents answer 13762, each through one unlikely token (a slip: log-probability -7);
    // one answers 9682 without a slip. Weighted (the default), the sure answer wins; counted
    // one each, the three do.
    auto script = [](const chat_request & q) {
        if (is_prefix(q)) {
            return reply("");
        }
        const bool slip = solver_slot(q) != 1;
        std::vector<float> lps(40, -0.01f);
        if (slip) {
            lps[20] = -7.0f;
        }
        return reply(slip ? "Final answer: 13762" : "Final answer: 9682", words(39, "x"), lps);
    };
    for (muse::vote_rule rule : { muse::VOTE_WEIGHTED, muse::VOTE_MAJORITY }) {
        scripted_backend be;
        be.set_responder(script);
        orchestrator orch(be, builtin_tools());
        ask_request  req = contemplate("What is 453 + 9229?");
        req.opt.prune    = false;
        if (rule == muse::VOTE_MAJORITY) {
            req.opt.vote = rule;
        }
        ask_result r = orch.run(req);
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.aggregation, "vote");
        EXPECT_EQ(r.vote.weighted, rule == muse::VOTE_WEIGHTED);
        for (const auto & a : r.agents) {
            if (a.kind == AGENT_SOLVER) {
                // the weakest stretch is prune_window (32) tokens long
                EXPECT_GE(a.scored_tokens, 40);  // the reasoning's pieces, then the answer's
                EXPECT_NEAR(a.weakest_logprob, a.answer == "Final answer: 9682" ? -0.32 : -7.31, 1e-4);
            }
        }
        if (rule == muse::VOTE_WEIGHTED) {
            EXPECT_EQ(r.vote.normalized, "9682");
            EXPECT_EQ(r.vote.votes, 1);
            EXPECT_GT(r.vote.weight, 0.95);
            EXPECT_DOUBLE_EQ(r.confidence, r.vote.weight);
            const nlohmann::ordered_json j = muse::to_json(r);
            EXPECT_EQ(j["vote"]["rule"], "weighted");
            EXPECT_EQ(j["vote"]["tally"][0]["answer"], "9682");
            EXPECT_EQ(j["vote"]["tally"][1]["votes"], 3);
            EXPECT_GT(j["vote"]["tally"][0]["weight"].get<double>(), 0.95);
        } else {
            EXPECT_EQ(r.vote.normalized, "13762");
            EXPECT_EQ(r.vote.votes, 3);
            EXPECT_DOUBLE_EQ(r.confidence, 0.75);
        }
    }
}

// A synthesiser that fails after the solvers answered (a remote server refusing its output)
// does not lose their answers: the most confident stands, and the request succeeds.
TEST(orchestrator, a_failed_synthesiser_leaves_the_most_confident_answer) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_synth(q)) {
            scripted_reply r;
            r.err = { muse::ERROR_UNAVAILABLE, "the backend http://10.0.0.9:8081 failed mid-answer: unparsed output" };
            return r;
        }
        return reply(words(20, "essay") + " slot " + std::to_string(solver_slot(q)), "r");
    });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("Write about rivers"));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "best_after_synthesis_failed");
    EXPECT_TRUE(has(r.answer, "slot ")) << r.answer;
    EXPECT_EQ(r.finish, muse::FINISH_STOP);
    EXPECT_GT(r.confidence, 0);
}

TEST(orchestrator, free_text_answers_are_synthesised) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_synth(q)) return reply("A combined essay.", "merge");
        return reply(words(60, "essay") + " slot " + std::to_string(solver_slot(q)), "r");
    });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("Write about rivers"));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "synthesis");
    EXPECT_EQ(r.answer, "A combined essay.");
    EXPECT_EQ(r.agents.back().answer, "A combined essay.") << "the synthesiser's own answer";
    const chat_request s = be.requests().back();
    ASSERT_TRUE(is_synth(s));
    for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(has(last_user(s), "slot " + std::to_string(i))) << "the synthesiser reads every candidate";
    }
    EXPECT_EQ(s.fork_from, 1u) << "the synthesiser forks the prefix";
    EXPECT_EQ(r.agents.back().kind, AGENT_SYNTHESIZER);
}

TEST(orchestrator, low_confidence_branch_is_pruned) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        const bool weak = solver_slot(q) == 1;
        return reply("Final answer: 5", words(40), std::vector<float>(41, weak ? -9.0f : -0.5f));
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req      = contemplate("q");
    req.opt.prune_window  = 8;
    ask_result r          = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    int n_pruned = 0;
    for (const auto & t : r.agents) {
        if (t.pruned) {
            n_pruned++;
            EXPECT_EQ(t.role, "backward verifier");  // slot 1
            EXPECT_LE(t.tokens, 9) << "stops right after the window fills";
            EXPECT_GE(t.tokens_saved, 64 - 9);
        }
    }
    EXPECT_EQ(n_pruned, 1);
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_EQ(r.vote.voters, 3) << "a pruned branch does not vote";
    EXPECT_GT(r.use.tokens_saved_by_pruning, 0);
}

TEST(orchestrator, all_pruned_synthesises_from_partial_reasoning) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_synth(q)) return reply("Best effort answer.");
        return reply("Final answer: 5", words(40, "muddle"), std::vector<float>(41, -9.0f));
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req     = contemplate("q");
    req.opt.prune_window = 8;
    ask_result r         = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "synthesis_all_pruned");
    EXPECT_EQ(r.answer, "Best effort answer.");
    EXPECT_EQ(r.confidence, 0);
    ASSERT_TRUE(is_synth(be.requests().back()));
    EXPECT_TRUE(has(last_user(be.requests().back()), "stopped early"));
    EXPECT_TRUE(has(last_user(be.requests().back()), "muddle"));
}

// Agents that run out of tokens before answering (a small max_tokens or budget) are a result,
// not a server error: their reasoning is synthesised, or the answer is empty with "length".
TEST(orchestrator, empty_answers_still_aggregate) {
    {
        scripted_backend be;
        be.set_responder([](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_synth(q)) return reply("From the notes.");
            return reply("", "unfinished " + std::to_string(solver_slot(q)));
        });
        orchestrator orch(be, builtin_tools());
        ask_result   r = orch.run(contemplate("q", 2));
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.aggregation, "synthesis_unfinished");
        EXPECT_EQ(r.answer, "From the notes.");
        EXPECT_TRUE(has(last_user(be.requests().back()), "unfinished 1"));
    }
    {
        scripted_backend be;
        be.set_responder([](const chat_request & q) { return reply(is_prefix(q) ? "" : ""); });
        orchestrator orch(be, builtin_tools());
        ask_result   r = orch.run(contemplate("q", 2));
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.aggregation, "none");
        EXPECT_EQ(r.answer, "");
        EXPECT_EQ(r.finish, FINISH_LENGTH);
    }
    {
        scripted_backend be;  // a real failure stays an error
        be.set_responder([](const chat_request & q) {
            scripted_reply rp = reply("");
            if (!is_prefix(q)) rp.err = { ERROR_DECODE, "decode failed" };
            return rp;
        });
        orchestrator orch(be, builtin_tools());
        ask_result   r = orch.run(contemplate("q", 2));
        EXPECT_TRUE(r.err);
        EXPECT_EQ(r.finish, FINISH_ERROR);
    }
}

TEST(orchestrator, pruning_off_keeps_every_branch) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        return is_prefix(q) ? reply("") : reply("Final answer: 5", words(40), std::vector<float>(41, -9.0f));
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req     = contemplate("q");
    req.opt.prune        = false;
    req.opt.prune_window = 8;
    ask_result r         = orch.run(req);
    for (const auto & t : r.agents) {
        EXPECT_FALSE(t.pruned);
    }
    EXPECT_EQ(r.aggregation, "vote");
}

TEST(orchestrator, plan_runs_independent_tasks_together_and_feeds_dependents) {
    const std::string plan_json = R"({"tasks":[
        {"id":"a","goal":"find x","role":"mathematician","depends_on":[],"tools":[]},
        {"id":"b","goal":"find y","role":"analyst","depends_on":[],"tools":[]},
        {"id":"c","goal":"combine x and y","role":"generalist","depends_on":["a","b"],"tools":[]}]})";
    std::mutex              mu;
    std::condition_variable cv;
    bool                    b_started = false, a_saw_b = false;
    scripted_backend        be;
    be.set_responder([&](const chat_request & q) {
        const std::string u = last_user(q);
        if (is_prefix(q)) return reply("");
        if (is_planner(q)) return reply(plan_json);
        if (has(u, "sub-task (a)")) {
            // a waits for b: only possible when both were started together.
            std::unique_lock<std::mutex> lk(mu);
            a_saw_b = cv.wait_for(lk, std::chrono::seconds(5), [&] { return b_started; });
            return reply("x is 3");
        }
        if (has(u, "sub-task (b)")) {
            {
                std::lock_guard<std::mutex> lk(mu);
                b_started = true;
            }
            cv.notify_all();
            return reply("y is 4");
        }
        if (has(u, "sub-task (c)")) return reply("x + y = 7");
        return reply("Final answer: 7");
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate("Compute x + y", 2);
    req.opt.planner  = true;
    ask_result r     = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_TRUE(a_saw_b) << "independent sub-tasks a and b must run at the same time";
    ASSERT_TRUE(r.has_plan);
    EXPECT_FALSE(r.plan_used.fallback);
    ASSERT_EQ(r.plan_used.tasks.size(), 3u);

    auto reqs = be.requests();
    int  i_a = -1, i_b = -1, i_c = -1, i_prefix_b = -1;
    for (int i = 0; i < (int) reqs.size(); ++i) {
        const std::string u = last_user(reqs[i]);
        if (has(u, "sub-task (a)")) i_a = i;
        if (has(u, "sub-task (b)")) i_b = i;
        if (has(u, "sub-task (c)")) i_c = i;
        if (is_prefix(reqs[i]) && has(u, "Results from helper agents")) i_prefix_b = i;
    }
    ASSERT_GE(i_c, 0);
    EXPECT_GT(i_c, i_a);
    EXPECT_GT(i_c, i_b);
    EXPECT_TRUE(has(last_user(reqs[i_c]), "x is 3")) << "a dependent sub-task receives its dependencies' results";
    EXPECT_TRUE(has(last_user(reqs[i_c]), "y is 4"));
    ASSERT_GE(i_prefix_b, 0) << "sub-task results extend the shared prefix";
    EXPECT_EQ(reqs[i_prefix_b].fork_from, 1u);
    for (const auto & q : reqs) {
        if (is_solver(q)) {
            EXPECT_EQ(q.fork_from, (uint64_t) i_prefix_b + 1) << "solvers fork the prefix with the results";
            EXPECT_TRUE(has(last_user(q), "x + y = 7"));
        }
    }
    EXPECT_EQ(r.answer, "7");
}

TEST(orchestrator, invalid_plan_falls_back_to_one_task) {
    for (const std::string & bad : { std::string(R"({"tasks":[{"id":"a","goal":"g","role":"wizard","depends_on":[],"tools":[]}]})"),
                                     std::string(R"({"tasks":[{"id":"a","goal":"g","role":"generalist","depends_on":["b"],"tools":[]},{"id":"b","goal":"g","role":"generalist","depends_on":["a"],"tools":[]}]})"),
                                     std::string(R"({"tasks":[{"id":"a","go)") }) {
        scripted_backend be;
        be.set_responder([&](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_planner(q)) return reply(bad);
            return reply("Final answer: 1");
        });
        orchestrator orch(be, builtin_tools());
        ask_request  req = contemplate("q", 2);
        req.opt.planner  = true;
        ask_result r     = orch.run(req);
        ASSERT_FALSE(r.err) << r.err.message;
        ASSERT_TRUE(r.has_plan);
        EXPECT_TRUE(r.plan_used.fallback) << bad;
        EXPECT_FALSE(r.plan_used.rejected.empty());
        EXPECT_EQ(r.plan_used.tasks.size(), 1u);
        EXPECT_EQ(r.answer, "1");
    }
}

// planner_budget bounds everything the planner generates (its reasoning is off, its plan is cut
// at the budget), a plan cut short runs as one task saying why in words, and the usage counts
// the planner's tokens apart.
TEST(orchestrator, the_planner_spends_at_most_its_budget) {
    const std::string plan = R"({"tasks":[{"id":"a","goal":")" + words(300, "long") + R"(","role":"generalist","depends_on":[],"tools":[]}]})";
    for (int32_t budget : { 16, 40, 200 }) {
        scripted_backend be;
        be.set_responder([&](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_planner(q)) return reply(plan, words(500, "mull"));
            return reply("Final answer: 1");
        });
        orchestrator orch(be, builtin_tools());
        ask_request  req     = contemplate("q", 2);
        req.opt.planner      = true;
        req.opt.plan_tokens  = budget;
        ask_result r         = orch.run(req);
        ASSERT_FALSE(r.err) << r.err.message;
        const chat_request * p = nullptr;
        for (const auto & q : be.requests()) {
            if (is_planner(q)) p = &q;
        }
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(p->max_tokens, budget);
        EXPECT_EQ(p->reasoning_budget, 0) << "the planner's budget goes to the plan, not to reasoning";
        EXPECT_GT(r.use.planner_tokens, 0);
        EXPECT_LE(r.use.planner_tokens, budget);
        EXPECT_TRUE(r.plan_used.fallback);
        EXPECT_TRUE(has(r.plan_used.rejected, "did not fit planner_budget (" + std::to_string(budget) + " tokens)")) << r.plan_used.rejected;
        EXPECT_EQ(plan_summary(r.plan_used), "planned as one task (the planner's plan was not usable)");
        EXPECT_EQ(r.answer, "1");
        const auto j = nlohmann::json::parse(to_json(r).dump());
        EXPECT_EQ(j["usage"]["planner_tokens"], r.use.planner_tokens);
        EXPECT_EQ(j["plan"]["summary"], "planned as one task (the planner's plan was not usable)");
    }
    ask_request req    = contemplate("q", 2);
    req.opt.plan_tokens = 15;
    scripted_backend be;
    orchestrator     orch(be, builtin_tools());
    EXPECT_TRUE(has(orch.run(req).err.message, "planner_budget")) << "under the table's minimum is refused, naming the field";
}

TEST(orchestrator, planner_is_constrained_by_the_plan_schema) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_planner(q)) return reply(R"({"tasks":[{"id":"answer","goal":"g","role":"generalist","depends_on":[],"tools":[]}]})");
        return reply("Final answer: 1");
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate("q", 1);
    req.opt.planner  = true;
    ask_result r     = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    const chat_request p = be.requests()[1];
    ASSERT_TRUE(is_planner(p));
    EXPECT_TRUE(has(p.json_schema, "\"tasks\""));
    EXPECT_EQ(p.tool_choice, "none");
    EXPECT_EQ(p.fork_from, 1u);
    EXPECT_EQ(r.aggregation, "single");
}

TEST(orchestrator, refinement_round_shows_each_agent_the_others) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_refiner(q)) return reply("Final answer: 8");
        return reply(solver_slot(q) == 0 ? "Final answer: 9" : "Final answer: 8");
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate("q", 3);
    req.opt.refine   = true;
    ask_result r     = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    int refiners = 0;
    for (const auto & q : be.requests()) {
        if (is_refiner(q)) {
            refiners++;
            EXPECT_TRUE(has(last_user(q), "Other agents answered"));
        }
    }
    EXPECT_EQ(refiners, 3);
    EXPECT_EQ(r.vote.votes, 3) << "the refined answers are the ones counted";
}

TEST(orchestrator, verdicts_are_read_from_the_end_of_an_answer) {
    using muse::contemplating::parse_verdict;
    EXPECT_EQ(parse_verdict("Verdict: right"), 1);
    EXPECT_EQ(parse_verdict("I checked it.\n**Verdict:** Correct."), 1);
    EXPECT_EQ(parse_verdict("verdict: wrong"), 0);
    EXPECT_EQ(parse_verdict("Verdict: incorrect, it is 5"), 0);
    EXPECT_EQ(parse_verdict("Verdict: right. On second thought, Verdict: wrong"), 0) << "the last verdict counts";
    EXPECT_EQ(parse_verdict("Verdict: maybe"), -1);
    EXPECT_EQ(parse_verdict("right"), -1);
    EXPECT_EQ(parse_verdict(""), -1);
}

// Four solvers: three share a slip (617), one is right (5417); the verifiers check both.
scripted_reply slipped_vote(const chat_request & q, const char * verdict_617, const char * verdict_5417) {
    if (is_prefix(q)) return reply("");
    if (is_verifier(q)) {
        return reply(has(last_user(q), "Check the answer 617.") ? verdict_617 : verdict_5417, "checking");
    }
    return reply(solver_slot(q) == 2 ? "Final answer: 5417" : "Final answer: 617", "r");
}

// Contemplating on the scripted backend answering with `fn`, with --verify unless told not to.
ask_result run_verify(scripted_backend & be, std::function<scripted_reply(const chat_request &)> fn,
                      const std::string & q, int k, bool verify = true) {
    be.set_responder(std::move(fn));
    orchestrator orch(be, builtin_tools());
    ask_request  req = contemplate(q, k);
    req.opt.verify   = verify;
    return orch.run(req);
}

int verifier_requests(const scripted_backend & be) {
    int n = 0;
    for (const auto & q : be.requests()) n += is_verifier(q);
    return n;
}

TEST(orchestrator, a_verified_answer_beats_a_shared_slip) {
    scripted_backend be;
    ask_result       r = run_verify(be, [](const chat_request & q) { return slipped_vote(q, "Verdict: wrong", "Verdict: right"); },
                                    "What is 5335 + 82?", 4);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "verified");
    EXPECT_EQ(r.answer, "5417");
    EXPECT_EQ(r.vote.normalized, "617") << "the vote itself is reported as counted";
    for (const auto & q : be.requests()) {
        if (!is_verifier(q)) continue;
        EXPECT_EQ(q.sampling.temperature, 0.0f) << "a verdict is greedy";
        EXPECT_TRUE(q.reasoning_budget > 0) << "a verifier reasons";
        EXPECT_TRUE(has(last_user(q), "What is 5335 + 82?")) << "the question comes with the candidate";
    }
    EXPECT_EQ(verifier_requests(be), 2) << "one verifier per distinct answer";
    int traced = 0;
    for (const auto & a : r.agents) traced += a.kind == AGENT_VERIFIER;
    EXPECT_EQ(traced, 2);
}

TEST(orchestrator, the_vote_stands_without_a_right_verdict_or_a_disagreement) {
    struct kase {
        const char * what;
        const char * verdict_617, * verdict_5417;
        bool         verify;
    };
    for (const kase & k : { kase{ "no answer found right (or no verdict at all)", "Verdict: wrong", "I am not sure.", true },
                            kase{ "both found right: the more-voted one", "Verdict: right", "Verdict: right", true },
                            kase{ "verification off (the default)", "Verdict: wrong", "Verdict: right", false } }) {
        scripted_backend be;
        ask_result       r = run_verify(
            be, [k](const chat_request & q) { return slipped_vote(q, k.verdict_617, k.verdict_5417); }, "What is 5335 + 82?", 4,
            k.verify);
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.aggregation, "vote") << k.what;
        EXPECT_EQ(r.answer, "617") << k.what;
        EXPECT_EQ(verifier_requests(be), k.verify ? 2 : 0) << k.what;
    }
    // Unanimous agents: nothing to check.
    scripted_backend be;
    ask_result       r = run_verify(
        be, [](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 7", "r"); }, "q", 3);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "vote");
    EXPECT_EQ(verifier_requests(be), 0);
}

TEST(orchestrator, no_verifier_runs_when_the_answers_go_to_a_synthesiser) {
    // Five agents: two short answers that differ, three essays with no extractable answer.
    // Fewer than half gave a ballot, so aggregation synthesises and a check would be wasted.
    scripted_backend be;
    ask_result       r = run_verify(
        be,
        [](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_synth(q)) return reply("A merged answer.", "merge");
            if (is_verifier(q)) return reply("Verdict: right", "c");
            const int slot = solver_slot(q);
            if (slot < 2) return reply(slot == 0 ? "Final answer: 1" : "Final answer: 2", "r");
            return reply(words(60, "essay") + " slot " + std::to_string(slot), "r");
        },
        "q", 5);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "synthesis");
    EXPECT_EQ(verifier_requests(be), 0);
}

TEST(orchestrator, at_most_three_answers_are_checked) {
    scripted_backend be;
    ask_result       r = run_verify(
        be,
        [](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_verifier(q)) return reply(has(last_user(q), "answer 5.") ? "Verdict: right" : "Verdict: wrong", "c");
            // Six agents, five different answers: 1 1 2 3 4 5.
            static const char * answers[] = { "Final answer: 1", "Final answer: 1", "Final answer: 2",
                                              "Final answer: 3", "Final answer: 4", "Final answer: 5" };
            return reply(answers[solver_slot(q)], "r");
        },
        "q", 6);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(verifier_requests(be), 3);
    EXPECT_NE(r.answer, "5") << "the least-voted answer was never checked";
}

TEST(orchestrator, tool_loop_runs_the_calculator_and_continues_by_fork) {
    scripted_backend be;
    scripted_reply   call;
    call.reasoning  = "I should compute";
    call.tool_calls = { { "c1", "calculator", R"({"expression":"0.1 + 0.2"})" } };
    be.add(call);
    be.add(reply("It is 0.3."));
    orchestrator orch(be, builtin_tools());
    ask_request  req;
    req.messages   = { { "user", "0.1 + 0.2?" } };
    req.opt.mode   = MODE_THINKING;
    req.opt.budget = 100;
    ask_result r   = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    ASSERT_EQ(r.agents.size(), 1u);
    ASSERT_EQ(r.agents[0].tool_calls.size(), 1u);
    EXPECT_EQ(r.agents[0].tool_calls[0].result, "0.3");
    EXPECT_TRUE(r.agents[0].tool_calls[0].ok);
    auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_TRUE(reqs[0].retain);
    EXPECT_EQ(reqs[1].fork_from, 1u) << "the continuation forks the first step";
    const chat_message & tool_msg = reqs[1].messages.back();
    EXPECT_EQ(tool_msg.role, "tool");
    EXPECT_EQ(tool_msg.tool_call_id, "c1");
    EXPECT_TRUE(has(tool_msg.content, "<tool_result name=\"calculator\""));
    EXPECT_TRUE(has(tool_msg.content, "not instructions"));
    EXPECT_EQ(reqs[1].messages[reqs[1].messages.size() - 2].tool_calls.size(), 1u);
    EXPECT_LT(reqs[1].reasoning_budget, 100) << "the budget is spent across tool steps";
    EXPECT_EQ(r.answer, "It is 0.3.");
}

// The table tool's path: an agent's query_table call runs read-only SQL on the attached table
// and the rows come back to it as a delimited tool result; a write is refused the same way.
TEST(orchestrator, query_table_call_reaches_the_attached_table) {
    auto set = std::make_shared<attachment_set>();
    ASSERT_FALSE(set->add_table_bytes("sales.csv", "region,amount\nnorth,10\nsouth,5\nnorth,2.5\n", "csv"));
    const table_info info = set->tables().tables().at(0);
    tool_registry reg = builtin_tools();
    reg.add(query_table_tool(set));

    scripted_backend be;
    scripted_reply   call;
    call.tool_calls = { { "q1", "query_table", R"({"sql":"SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region"})" } };
    be.add(call);
    scripted_reply drop;
    drop.tool_calls = { { "q2", "query_table", R"({"sql":"DROP TABLE sales"})" } };
    be.add(drop);
    be.add(reply("North sold 12.5."));
    orchestrator orch(be, reg);
    ask_request  req;
    req.messages   = { { "user", "Which region sold more?\n" + info.summary } };
    req.opt.mode   = MODE_THINKING;
    req.opt.budget = 100;
    req.opt.tools.push_back("query_table");
    ask_result r = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    ASSERT_EQ(r.agents[0].tool_calls.size(), 2u);
    EXPECT_TRUE(r.agents[0].tool_calls[0].ok) << r.agents[0].tool_calls[0].result;
    EXPECT_EQ(r.agents[0].tool_calls[0].result, "region | total\nnorth | 12.5\nsouth | 5\n(2 rows)\n");
    EXPECT_FALSE(r.agents[0].tool_calls[1].ok);
    EXPECT_TRUE(has(r.agents[0].tool_calls[1].result, "only reading is allowed")) << r.agents[0].tool_calls[1].result;
    auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 3u);
    bool offered = false;
    for (const auto & t : reqs[0].tools) {
        offered |= t.name == "query_table" && has(t.description, "sales(region TEXT, amount REAL)");
    }
    EXPECT_TRUE(offered) << "the agent is shown the tool with the table's schema";
    EXPECT_TRUE(has(reqs[1].messages.back().content, "<tool_result name=\"query_table\""));
    EXPECT_TRUE(has(reqs[1].messages.back().content, "north | 12.5"));
    EXPECT_EQ(set->tables().query("SELECT COUNT(*) AS n FROM sales").text, "n\n3\n(1 row)\n") << "the table is intact";
    EXPECT_EQ(r.answer, "North sold 12.5.");
}

TEST(orchestrator, tool_errors_reach_the_model_and_steps_are_capped) {
    scripted_backend be;
    scripted_reply   c1, c2, c3;
    c1.tool_calls = { { "", "calculator", R"({"expression":"1/0"})" } };
    c2.tool_calls = { { "", "teleporter", R"({})" } };
    c3.tool_calls = { { "", "calculator", R"({"expression":"2+2"})" } };
    be.add(c1);
    be.add(c2);
    be.add(c3);
    be.add(reply("done"));
    orchestrator orch(be, builtin_tools());
    ask_request  req;
    req.messages           = { { "user", "x" } };
    req.opt.mode           = MODE_INSTANT;
    req.opt.max_tool_steps = 2;
    ask_result r           = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    const auto & calls = r.agents[0].tool_calls;
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_FALSE(calls[0].ok);
    EXPECT_TRUE(has(calls[0].result, "division by zero")) << calls[0].result;
    EXPECT_FALSE(calls[1].ok);
    EXPECT_TRUE(has(calls[1].result, "teleporter"));
    EXPECT_FALSE(calls[2].ok) << "the third call is over the cap of 2";
    EXPECT_TRUE(has(calls[2].result, "limit"));
    EXPECT_EQ(be.requests().back().tool_choice, "none") << "after the cap the model must answer";
    EXPECT_EQ(r.answer, "done");
}

TEST(orchestrator, auto_routes_and_says_why) {
    scripted_backend be;
    be.set_responder([](const chat_request &) { return reply("Hello!"); });
    orchestrator orch(be, builtin_tools());
    ask_request  req;
    req.messages = { { "user", "hi there!" } };
    ask_result r = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.mode_requested, MODE_AUTO);
    EXPECT_EQ(r.mode, MODE_INSTANT);
    EXPECT_FALSE(r.mode_reason.empty());
}

TEST(orchestrator, auto_can_ask_the_model_to_classify) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (!q.grammar.empty()) return reply("thinking");
        return reply("ok", "hmm");
    });
    orchestrator orch(be, builtin_tools());
    ask_request  req;
    req.messages          = { { "user", "hi there!" } };
    req.opt.router_model  = true;
    ask_result r          = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.mode, MODE_THINKING);
    EXPECT_TRUE(has(r.mode_reason, "classified it as thinking")) << r.mode_reason;
    EXPECT_TRUE(has(be.requests()[0].grammar, "contemplating"));
}

TEST(orchestrator, stop_flag_cancels_the_request) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 1", words(50)); });
    orchestrator      orch(be, builtin_tools());
    cancel_source     stop;
    stop.request_stop();
    ask_result        r = orch.run(contemplate("q"), nullptr, stop.get_token());
    EXPECT_EQ(r.finish, FINISH_CANCELLED);
}

TEST(orchestrator, events_name_their_agent) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 2", "a b c"); });
    orchestrator     orch(be, builtin_tools());
    std::vector<int> starts, ends;
    int              deltas = 0, aggregates = 0;
    ask_result r = orch.run(contemplate("q", 3), [&](const ask_event & ev) {
        if (ev.type == ask_event::AGENT_START) starts.push_back(ev.agent);
        if (ev.type == ask_event::AGENT_END) ends.push_back(ev.agent);
        if (ev.type == ask_event::AGENT_DELTA) {
            EXPECT_GE(ev.agent, 0);
            deltas++;
        }
        if (ev.type == ask_event::AGGREGATE) aggregates++;
    });
    EXPECT_EQ(starts.size(), 3u);
    EXPECT_EQ(ends.size(), 3u);
    EXPECT_GE(deltas, 3 * 3);
    EXPECT_EQ(aggregates, 1);
}

TEST(orchestrator, answers_that_all_differ_are_synthesised_not_voted) {
    scripted_backend be;
    be.set_responder([](const chat_request & q) {
        if (is_prefix(q)) return reply("");
        if (is_synth(q)) return reply("Final answer: 3");
        return reply("Final answer: " + std::to_string(solver_slot(q) + 1));
    });
    orchestrator orch(be, builtin_tools());
    ask_result   r = orch.run(contemplate("q"));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.aggregation, "synthesis");
    EXPECT_EQ(r.answer, "Final answer: 3");
}

TEST(orchestrator, client_tools_stop_the_agent_and_come_back_as_calls) {
    scripted_backend be;
    scripted_reply   call;
    call.tool_calls = { { "", "get_weather", R"({"city":"Oslo"})" } };
    be.add(call);
    orchestrator orch(be, builtin_tools());
    ask_request  req;
    req.messages                = { { "user", "Weather in Oslo?" } };
    req.opt.mode                = MODE_THINKING;
    req.opt.client_tools        = { { "get_weather", "Current weather", R"({"type":"object"})" } };
    req.opt.client_tool_choice  = "required";
    ask_result r = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.finish, FINISH_TOOL_CALLS);
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "get_weather");
    EXPECT_EQ(r.tool_calls[0].arguments, R"({"city":"Oslo"})");
    EXPECT_EQ(r.tool_calls[0].id.rfind("call_", 0), 0u) << "the caller gets an id to answer to";
    EXPECT_TRUE(r.agents[0].tool_calls.empty()) << "Muse does not run the client's tools";
    auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 1u) << "the agent stops at the call";
    ASSERT_EQ(reqs[0].tools.size(), 1u) << "client tools replace the built-in ones";
    EXPECT_EQ(reqs[0].tools[0].name, "get_weather");
    EXPECT_EQ(reqs[0].tool_choice, "required");

    // Contemplating cannot hand calls back from four agents: refused when asked, thinking under auto.
    req.opt.mode = MODE_CONTEMPLATING;
    r            = orch.run(req);
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_TRUE(has(r.err.message, "client tools")) << r.err.message;
    // A request the router sends to contemplating goes to thinking when client tools come with it.
    const std::string hard =
        "I need to design a caching layer for our API. 1. Write a C++ function that estimates the hit rate given "
        "a Zipf distribution with exponent 1.2 over 10^6 keys. 2. Calculate the expected memory use for a cache of "
        "50,000 entries of 2 KB each, and compare LRU versus LFU eviction. Which would you pick and why?";
    ASSERT_EQ(route_request(hard, 0).mode, MODE_CONTEMPLATING) << "the test needs a request routed to contemplating";
    req.opt.mode = MODE_AUTO;
    req.messages = { { "user", hard } };
    be.add(call);
    r = orch.run(req);
    EXPECT_EQ(r.mode, MODE_THINKING);
    EXPECT_TRUE(has(r.mode_reason, "client tools")) << r.mode_reason;
    EXPECT_EQ(r.finish, FINISH_TOOL_CALLS);
}

// What a tool returns enters JSON (traces, streamed events): it is made valid UTF-8 and cut on
// a character boundary, so a long or broken output cannot make serialisation throw.
TEST(orchestrator, tool_output_is_valid_utf8_when_cut) {
    tool_registry reg;
    reg.add({ { "blob", "returns a lot", R"({"type":"object","properties":{}})" },
              [](const std::string &) { return tool_output{ true, std::string(9001, 'x') + std::string(3000, '\xc3') + "\xa9" }; } });
    reg.add({ { "accents", "returns a lot", R"({"type":"object","properties":{}})" },
              [](const std::string &) {
                  std::string s = "x";
                  for (int i = 0; i < 6000; ++i) s += "\xc3\xa9";
                  return tool_output{ true, s };
              } });
    for (const char * name : { "blob", "accents" }) {
        const tool_output out = reg.call(name, "{}");
        EXPECT_TRUE(utf8_valid(out.text)) << name;
        EXPECT_NO_THROW((void) nlohmann::json(out.text).dump()) << name;
        EXPECT_LT(out.text.size(), 9000u) << name;
    }
}

// A model whose chat template cannot call tools (backend_caps::tools false) is never shown
// Muse's own tools, in any mode: its prompts would otherwise carry a tool protocol it never
// learned.
TEST(orchestrator, a_model_without_tool_calling_is_shown_no_tools) {
    for (ask_mode m : { MODE_THINKING, MODE_CONTEMPLATING }) {
        for (bool tools : { true, false }) {
            scripted_backend be;
            backend_caps     caps = be.caps();
            caps.tools            = tools;
            be.set_caps(caps);
            be.set_responder([](const chat_request & q) { return is_prefix(q) ? reply("") : reply("Final answer: 7", "r"); });
            orchestrator orch(be, builtin_tools());
            ask_request  req = contemplate("What is 3 + 4?");
            req.opt.mode     = m;
            ask_result r     = orch.run(req);
            ASSERT_FALSE(r.err) << r.err.message;
            size_t shown = 0;
            for (const auto & q : be.requests()) shown += q.tools.size();
            if (tools) {
                EXPECT_GT(shown, 0u) << ask_mode_name(m) << ": a tool-calling model sees the calculator";
            } else {
                EXPECT_EQ(shown, 0u) << ask_mode_name(m);
            }
            EXPECT_TRUE(has(r.answer, "7")) << r.answer;
        }
    }
}

// Contemplating skips the planner on a model trained on a short context (it cannot hold the
// planner's instructions with a plan), says so in the plan, and still votes; a model with a
// long or unknown trained context gets the planner.
TEST(orchestrator, planner_is_skipped_on_a_short_trained_context) {
    for (int32_t n_train : { 256, 0, 4096 }) {
        scripted_backend be;
        backend_caps     caps = be.caps();
        caps.n_ctx_train      = n_train;
        be.set_caps(caps);
        be.set_responder([](const chat_request & q) {
            if (is_prefix(q)) return reply("");
            if (is_planner(q)) return reply(R"({"tasks":[{"id":"sum","goal":"add","role":"mathematician","depends_on":[]}]})");
            return reply("Final answer: 7", "r");
        });
        orchestrator orch(be, builtin_tools());
        ask_request  req = contemplate("What is 3 + 4?");
        req.opt.planner  = true;
        ask_result r     = orch.run(req);
        ASSERT_FALSE(r.err) << r.err.message;
        int planners = 0;
        for (const auto & q : be.requests()) planners += is_planner(q);
        ASSERT_TRUE(r.has_plan);
        if (n_train == 256) {
            EXPECT_EQ(planners, 0);
            EXPECT_TRUE(has(r.plan_used.rejected, "planner skipped")) << r.plan_used.rejected;
            EXPECT_TRUE(has(r.plan_used.rejected, "256")) << r.plan_used.rejected;
        } else {
            EXPECT_EQ(planners, 1) << "n_ctx_train " << n_train;
            EXPECT_TRUE(r.plan_used.rejected.empty()) << r.plan_used.rejected;
        }
        EXPECT_EQ(r.aggregation, "vote");
        EXPECT_EQ(r.answer, "7");
    }
}
