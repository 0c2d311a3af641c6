// The reasoning modes on a generated model through the local backend: what the orchestrator
// promises about prefill sharing, batching, reasoning on/off and budgets, checked against
// the engine's own counters.

#include "test-models.h"

#include "backend/local-backend.h"
#include "engine/engine.h"
#include "reasoning/orchestrator.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace muse::test {

namespace {

struct rig {
    std::unique_ptr<engine>        eng;
    std::unique_ptr<local_backend> be;
    std::unique_ptr<orchestrator>  orch;

    explicit rig(test_family f, int32_t prompt_cache = 0) {
        engine_params p;
        p.n_ctx     = 4096;
        p.n_seq_max = 16;
        p.n_threads = 2;
        p.prompt_cache = prompt_cache;
        error err;
        eng = engine::create(shared_model(f), p, err);
        if (!eng) {
            throw std::runtime_error(err.message);
        }
        be   = std::make_unique<local_backend>(*eng);
        orch = std::make_unique<orchestrator>(*be, builtin_tools());
    }
};

ask_request question(ask_mode mode) {
    ask_request req;
    req.messages = { { "user", "A train leaves at 3 pm and travels 120 km at 60 km/h. When does it arrive? "
                               "Explain the steps and give the final time." } };
    req.opt.mode          = mode;
    req.opt.budget        = 12;
    req.opt.answer_tokens = 8;
    req.opt.sampling.seed = 7;
    req.opt.tools.clear();  // random weights would call tools at random
    return req;
}

}  // namespace

class modes_test : public ::testing::TestWithParam<test_family> {};

TEST_P(modes_test, contemplating_prefills_the_shared_prefix_once_and_batches_the_solvers) {
    rig          r(GetParam());
    ask_request  req = question(MODE_CONTEMPLATING);
    req.opt.agents   = 4;
    req.opt.planner  = false;
    req.opt.prune    = false;
    req.opt.budget   = 4;  // fewer tokens than a role's opening words: they must not count against it
    const engine_stats before = r.eng->stats();
    ask_result   res  = r.orch->run(req);
    const engine_stats after  = r.eng->stats();
    ASSERT_FALSE(res.err) << res.err.message;

    int solvers = 0;
    for (const auto & t : res.agents) {
        if (t.kind != AGENT_SOLVER) {
            continue;
        }
        solvers++;
        // Each solver computes only "You are agent N": the conversation and the team's roles
        // come from the prefixes. Each of the two prefix levels ends with a few template tokens
        // (end of the user turn, start of the assistant's) that its children cannot share.
        EXPECT_GE(t.prompt_tokens_reused, res.use.shared_prefix_tokens - 16) << "agent " << t.index;
        EXPECT_LE(t.prompt_tokens_prefilled, 24) << "agent " << t.index;
        EXPECT_GT(t.tokens, 0);
        // The role opens the reasoning and the forced end closes it in the template's syntax:
        // none of that syntax leaks into the reasoning or the answer.
        for (const char * marker : { "<|message|>", "to=user", "</think>" }) {
            EXPECT_EQ(t.reasoning.find(marker), std::string::npos) << "agent " << t.index << " reasoning: " << t.reasoning;
            EXPECT_EQ(t.answer.find(marker), std::string::npos) << "agent " << t.index << " answer: " << t.answer;
        }
    }
    EXPECT_EQ(solvers, 4);
    EXPECT_GT(res.use.shared_prefix_tokens, 40);
    // Prefilled once: all prefill work is the prefix plus the four directives (and a
    // synthesiser's, when answers were not extractable), far from 4 full prompts.
    int32_t agents_prefilled = 0;
    for (const auto & t : res.agents) {
        agents_prefilled += t.prompt_tokens_prefilled;
    }
    EXPECT_EQ(res.use.prompt_tokens_prefilled, res.use.shared_prefix_tokens + agents_prefilled)
        << "the shared prefix is counted once; agents add only their own suffixes";
    EXPECT_EQ(after.prefill_tokens - before.prefill_tokens, (uint64_t) res.use.prompt_tokens_prefilled)
        << "the engine computed exactly the prompt tokens the result reports";
    // The four solvers advance together: decode calls that sampled 4 sequences at once.
    EXPECT_GE(after.max_batch_seqs, 4u);
    EXPECT_GE(after.multi_seq_calls - before.multi_seq_calls, 10u);
    EXPECT_FALSE(res.aggregation.empty());
    EXPECT_TRUE(res.aggregation == "vote" || res.aggregation == "synthesis" || res.aggregation == "single")
        << res.aggregation;
}

TEST_P(modes_test, planner_output_is_valid_json_under_the_schema_grammar) {
    rig         r(GetParam());
    ask_request req        = question(MODE_CONTEMPLATING);
    req.opt.agents         = 1;
    req.opt.planner        = true;
    req.opt.max_plan_tasks = 2;
    req.opt.plan_tokens    = 4096;
    req.opt.prune          = false;
    ask_result res         = r.orch->run(req);
    ASSERT_FALSE(res.err) << res.err.message;
    const agent_trace * planner = nullptr;
    for (const auto & t : res.agents) {
        if (t.kind == AGENT_PLANNER) {
            planner = &t;
        }
    }
    ASSERT_NE(planner, nullptr);
    ASSERT_EQ(planner->finish, FINISH_STOP) << "the grammar ends the plan before the token cap";
    const auto j = nlohmann::json::parse(planner->answer, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << planner->answer;
    ASSERT_TRUE(j.contains("tasks") && j["tasks"].is_array()) << planner->answer;
    EXPECT_GE(j["tasks"].size(), 1u);
    EXPECT_LE(j["tasks"].size(), 2u);
    for (const auto & t : j["tasks"]) {
        EXPECT_TRUE(t.contains("id") && t.contains("goal") && t.contains("role") && t.contains("depends_on"));
    }
    ASSERT_TRUE(res.has_plan);
    EXPECT_GE(res.plan_used.tasks.size(), 1u) << "a valid plan or the one-task fallback";
}

TEST_P(modes_test, instant_answers_without_reasoning) {
    rig         r(GetParam());
    ask_request req = question(MODE_INSTANT);
    ask_result  res = r.orch->run(req);
    ASSERT_FALSE(res.err) << res.err.message;
    EXPECT_EQ(res.mode, MODE_INSTANT);
    EXPECT_EQ(res.reasoning, "");
    ASSERT_EQ(res.agents.size(), 1u);
    EXPECT_GT(res.agents[0].tokens, 0);
    EXPECT_LE(res.agents[0].tokens, 8);
}

TEST_P(modes_test, thinking_stays_within_its_budget) {
    rig         r(GetParam());
    ask_request req = question(MODE_THINKING);
    ask_result  res = r.orch->run(req);
    ASSERT_FALSE(res.err) << res.err.message;
    ASSERT_EQ(res.agents.size(), 1u);
    EXPECT_FALSE(res.reasoning.empty()) << "thinking reasons";
    const auto & toks = r.eng->tokenize(res.reasoning);
    // The reasoning text re-tokenized may differ by a few tokens from the generated ones.
    EXPECT_LE((int) toks.size(), req.opt.budget + 4) << res.reasoning;
    EXPECT_LE(res.agents[0].tokens, req.opt.budget + req.opt.answer_tokens);
}

INSTANTIATE_TEST_SUITE_P(families, modes_test, ::testing::Values(QWEN, GLIMMER),
                         [](const auto & info) { return info.param == QWEN ? "qwen" : "glimmer"; });

}  // namespace muse::test

namespace muse::test {

// Random weights are close to uniform (about -ln(n_vocab) nats per token), far below the
// pruning threshold: branches stop once the window is full and report what they saved.
// The request's cache salt reaches the engine through the orchestrator and the local backend:
// the same conversation reuses the cached prompt of its own user only (what the HTTP API
// reports as cached_tokens).
TEST(modes_cache_salt, a_request_reuses_only_its_own_salts_cached_prompt) {
    rig         r(QWEN, 8);
    ask_request a = question(MODE_INSTANT);
    a.cache_salt  = "user-a";
    ask_result first = r.orch->run(a);
    ASSERT_FALSE(first.err) << first.err.message;
    EXPECT_EQ(first.use.prompt_tokens_reused, 0);

    ask_request b = a;
    b.cache_salt  = "user-b";
    ask_result other = r.orch->run(b);
    ASSERT_FALSE(other.err) << other.err.message;
    EXPECT_EQ(other.use.prompt_tokens_reused, 0) << "user-a's prompt is not user-b's to reuse";

    ask_result again = r.orch->run(a);
    ASSERT_FALSE(again.err) << again.err.message;
    EXPECT_GE(again.use.prompt_tokens_reused, again.use.prompt_tokens_prefilled) << "user-a's own prompt is reused";
}

TEST(modes_pruning, low_confidence_branches_stop_early_on_the_real_engine) {
    rig         r(GLIMMER);
    ask_request req        = question(MODE_CONTEMPLATING);
    req.opt.agents         = 4;
    req.opt.planner        = false;
    req.opt.budget         = 96;
    req.opt.prune_window   = 8;
    ask_result res         = r.orch->run(req);
    ASSERT_FALSE(res.err) << res.err.message;
    int pruned = 0;
    for (const auto & t : res.agents) {
        if (t.kind == AGENT_SOLVER && t.pruned) {
            pruned++;
            EXPECT_LE(t.tokens, 8 + 2) << "stopped within a step of the window filling";
            EXPECT_GE(t.tokens_saved, 96 - 10);
            EXPECT_LT(t.confidence, -5.0);
        }
    }
    EXPECT_GE(pruned, 1);
    EXPECT_GT(res.use.tokens_saved_by_pruning, 0);
    if (pruned == 4) {
        EXPECT_EQ(res.aggregation, "synthesis_all_pruned");
    }
}

}  // namespace muse::test
