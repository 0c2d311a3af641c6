// Backend contract: the same behaviour from every implementation.

#include "backend-contract.h"

#include "core/limits.h"
#include "reasoning/orchestrator.h"

#include <mutex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace muse;

namespace {

class backend_contract : public ::testing::Test {
  protected:
    void SetUp() override { impl = test::make_contract_backend(); }
    backend & be() { return impl->get(); }

    chat_request ask(const std::string & text) {
        chat_request r;
        r.messages             = { { "user", text } };
        r.sampling.temperature = 0;
        r.max_tokens           = 16;
        return r;
    }

    std::unique_ptr<test::contract_backend> impl;
};

TEST_F(backend_contract, stream_ends_with_exactly_one_done) {
    auto       s = be().start(ask("Tell me something."));
    chat_event ev;
    int        n_done = 0, n_text = 0;
    bool       done_last = false;
    while (s->next(ev)) {
        done_last = ev.type == chat_event::DONE;
        n_done += done_last;
        n_text += ev.type == chat_event::CONTENT || ev.type == chat_event::REASONING;
    }
    EXPECT_EQ(n_done, 1);
    EXPECT_TRUE(done_last);
    EXPECT_GT(n_text, 0);
    EXPECT_FALSE(s->next(ev)) << "next() must stay false after DONE";
}

TEST_F(backend_contract, usage_counts_prompt_and_completion) {
    auto r = collect(*be().start(ask("Count these words please.")));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_GT(r.use.prompt_tokens, 0);
    EXPECT_EQ(r.use.prompt_tokens, r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused);
    EXPECT_GT(r.use.completion_tokens, 0);
    EXPECT_TRUE(r.finish == FINISH_STOP || r.finish == FINISH_LENGTH);
}

TEST_F(backend_contract, max_tokens_bounds_the_answer) {
    auto req       = ask("Write a long story about the sea.");
    req.max_tokens = 5;
    auto r         = collect(*be().start(req));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_LE(r.use.completion_tokens, 5);
    EXPECT_EQ(r.finish, FINISH_LENGTH);
}

TEST_F(backend_contract, empty_messages_are_an_invalid_argument) {
    chat_request req;
    auto         r = collect(*be().start(req));
    EXPECT_EQ(r.finish, FINISH_ERROR);
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("messages"), std::string::npos) << r.err.message;
}

TEST_F(backend_contract, out_of_range_sampling_is_an_invalid_argument) {
    auto req                 = ask("hi");
    req.sampling.temperature = -1;
    auto r                   = collect(*be().start(req));
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("temperature"), std::string::npos) << r.err.message;

    req                = ask("hi");
    req.sampling.top_p = 0;
    EXPECT_EQ(collect(*be().start(req)).err.code, ERROR_INVALID_ARGUMENT);
}

// The request's own stop strings are counted before a chat template adds its own: the most the
// front ends allow runs, one more is refused naming them.
TEST_F(backend_contract, stop_strings_are_counted_before_the_templates) {
    auto req = ask("hi");
    req.max_tokens = 4;
    for (int i = 0; i < (int) k_limit_stop.max; ++i) {
        req.stop.push_back("never said " + std::to_string(i));
    }
    auto r = collect(*be().start(req));
    EXPECT_FALSE(r.err) << r.err.message;
    req.stop.push_back("one too many");
    r = collect(*be().start(req));
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("stop"), std::string::npos) << r.err.message;
}

TEST_F(backend_contract, fork_from_unknown_stream_fails) {
    if (!be().caps().fork) GTEST_SKIP() << "no fork: caps_describe_the_backend checks that a fork is refused";
    auto req      = ask("hi");
    req.fork_from = 987654321;
    auto r        = collect(*be().start(req));
    EXPECT_EQ(r.err.code, ERROR_PARENT_NOT_FOUND);
}

TEST_F(backend_contract, fork_of_retained_stream_reuses_its_prefix) {
    if (!be().caps().fork) GTEST_SKIP() << "no fork: caps_describe_the_backend checks that a fork is refused";
    auto parent_req   = ask("Here is a shared question that several agents will answer in turn.");
    parent_req.retain = true;
    auto parent       = be().start(parent_req);
    auto pr           = collect(*parent);
    ASSERT_FALSE(pr.err) << pr.err.message;

    auto child_req      = parent_req;
    child_req.retain    = false;
    child_req.fork_from = parent->id();
    child_req.messages.push_back({ "assistant", "First thought." });
    child_req.messages.push_back({ "user", "Now answer as the critic." });
    auto r = collect(*be().start(child_req));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_GT(r.use.prompt_tokens_reused, 0);
    EXPECT_LT(r.use.prompt_tokens_prefilled, r.use.prompt_tokens);
}

TEST_F(backend_contract, cancel_ends_the_stream_as_cancelled) {
    auto req       = ask("Write a very long essay.");
    req.max_tokens = 4000;
    auto       s   = be().start(req);
    chat_event ev;
    ASSERT_TRUE(s->next(ev));
    s->cancel();
    finish_reason fin = FINISH_NONE;
    while (s->next(ev)) {
        if (ev.type == chat_event::DONE) {
            fin = ev.finish;
        }
    }
    EXPECT_EQ(fin, FINISH_CANCELLED);
}

TEST_F(backend_contract, reasoning_off_gives_no_reasoning) {
    auto req      = ask("Answer directly.");
    req.reasoning = REASONING_OFF;
    auto r        = collect(*be().start(req));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_TRUE(r.reasoning.empty()) << r.reasoning;
    EXPECT_FALSE(r.content.empty());
}

TEST_F(backend_contract, caps_describe_the_backend) {
    const backend_caps c = be().caps();
    EXPECT_FALSE(c.name.empty());
    EXPECT_GT(c.n_ctx, 0);
    if (!c.meta_json.empty()) {
        EXPECT_TRUE(nlohmann::json::parse(c.meta_json, nullptr, false).is_object()) << c.meta_json;
    }
    if (!c.fork) {
        // A backend without fork refuses a request that asks for one, with an error, not a crash.
        auto req      = ask("hi");
        req.fork_from = 1;
        EXPECT_TRUE(collect(*be().start(req)).err);
    }
}

// What a backend without fork looks like to the modes (a remote server): the caps say so, and
// a request that asks to fork or retain a prefix is refused, as such a backend would.
class no_fork_backend : public backend {
  public:
    explicit no_fork_backend(backend & inner) : in(inner) {}
    std::unique_ptr<chat_stream> start(const chat_request & req) override {
        std::lock_guard<std::mutex> lk(mu);
        seen.push_back(req);
        if (req.fork_from != 0 || req.retain) {
            refused++;
            return in.start(chat_request{});  // empty messages: the inner backend's invalid-argument stream
        }
        return in.start(req);
    }
    backend_caps caps() const override {
        backend_caps c = in.caps();
        c.fork         = false;
        return c;
    }
    std::vector<chat_request> requests() {
        std::lock_guard<std::mutex> lk(mu);
        return seen;
    }
    int refused = 0;

  private:
    backend &                 in;
    std::mutex                mu;
    std::vector<chat_request> seen;
};

// Caps are honoured: on a backend without fork, contemplating still runs, as K independent
// requests that carry the same conversation (a prefix a prompt cache may share), none of them
// asking to fork or retain.
TEST_F(backend_contract, contemplating_runs_without_fork_as_k_requests_sharing_a_prefix) {
    no_fork_backend nf(be());
    orchestrator    orch(nf, builtin_tools());
    ask_request     req;
    req.messages             = { { "user", "What is 3 + 4? Think it through." } };
    req.opt.mode             = MODE_CONTEMPLATING;
    req.opt.agents           = 3;
    req.opt.planner          = false;
    req.opt.prune            = false;
    req.opt.budget           = 16;
    req.opt.answer_tokens    = 12;
    req.opt.tools            = {};
    req.opt.sampling.temperature = 0.5f;
    ask_result r = orch.run(req);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(nf.refused, 0) << "the orchestrator asked a backend without fork to fork or retain";
    int solvers = 0;
    for (const auto & t : r.agents) {
        EXPECT_FALSE(t.err) << t.err.message;
        if (t.kind == AGENT_SOLVER) {
            solvers++;
            EXPECT_GT(t.tokens, 0);
            EXPECT_EQ(t.prompt_tokens_reused, 0) << "nothing was forked";
        }
    }
    EXPECT_EQ(solvers, 3);
    // Every request carries the whole conversation: the user's question, first, in each.
    const auto reqs = nf.requests();
    ASSERT_GE(reqs.size(), 3u);
    for (const auto & q : reqs) {
        ASSERT_FALSE(q.messages.empty());
        EXPECT_NE(q.messages.back().content.find("What is 3 + 4?"), std::string::npos);
    }
    EXPECT_FALSE(r.answer.empty() && r.aggregation != "synthesis_unfinished") << r.aggregation;
}

}  // namespace
