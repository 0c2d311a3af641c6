// The scripted backend: contract suite plus its own replay behaviour.

#include "backend-contract.h"

#include "backend/scripted-backend.h"

#include <gtest/gtest.h>

using namespace muse;

namespace muse::test {

struct scripted_contract : contract_backend {
    scripted_backend be;
    scripted_contract() {
        be.set_responder([](const chat_request &) {
            scripted_reply r;
            r.reasoning = "Let me think about this step by step before answering the question.";
            r.content   = "Here is a scripted answer with more than five words in it, long enough for limits.";
            return r;
        });
    }
    backend & get() override { return be; }
};

std::unique_ptr<contract_backend> make_contract_backend() { return std::make_unique<scripted_contract>(); }

}  // namespace muse::test

TEST(scripted_backend, replays_replies_in_order_then_errors) {
    scripted_backend be({ { "", "first", {}, {} }, { "why", "second", {}, {} } });
    chat_request     req;
    req.messages = { { "user", "q" } };
    EXPECT_EQ(collect(*be.start(req)).content, "first");
    auto second = collect(*be.start(req));
    EXPECT_EQ(second.content, "second");
    EXPECT_EQ(second.reasoning, "why");
    auto third = collect(*be.start(req));
    EXPECT_EQ(third.err.code, ERROR_INTERNAL);
    EXPECT_EQ(be.requests().size(), 3u);
}

TEST(scripted_backend, budget_truncates_reasoning_and_answer_follows) {
    scripted_backend be({ { "one two three four five six", "answer", {}, {} } });
    chat_request     req;
    req.messages         = { { "user", "q" } };
    req.reasoning_budget = 2;
    auto r               = collect(*be.start(req));
    EXPECT_EQ(r.reasoning, "one two");
    EXPECT_EQ(r.content, "answer");
}

TEST(scripted_backend, scripted_error_reaches_the_caller) {
    scripted_backend be({ { "", "", {}, { ERROR_NO_KV_SLOT, "full" } } });
    chat_request     req;
    req.messages = { { "user", "q" } };
    auto r       = collect(*be.start(req));
    EXPECT_EQ(r.finish, FINISH_ERROR);
    EXPECT_EQ(r.err.code, ERROR_NO_KV_SLOT);
}

TEST(scripted_backend, tool_calls_are_streamed) {
    scripted_backend be({ { "", "", { { "call_0", "search", "{\"q\":\"x\"}" } }, {} } });
    chat_request     req;
    req.messages = { { "user", "q" } };
    auto r       = collect(*be.start(req));
    ASSERT_EQ(r.tool_calls.size(), 1u);
    EXPECT_EQ(r.tool_calls[0].name, "search");
    EXPECT_EQ(r.tool_calls[0].arguments, "{\"q\":\"x\"}");
}
