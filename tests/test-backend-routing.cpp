// The routing backend over scripted members: the backend contract, then its own rules —
// affinity, saturation, failover before the first token (never after), the circuit breaker.

#include "backend-contract.h"

#include "backend/routing/routing-backend.h"
#include "backend/scripted-backend.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

using namespace muse;

namespace muse::test {

namespace {

scripted_reply answer(const std::string & who) {
    scripted_reply r;
    r.reasoning = "Thinking it over step by step before the answer comes.";
    r.content   = "The answer from " + who + ", long enough for every limit in the contract.";
    return r;
}

scripted_reply down() {
    scripted_reply r;
    r.err = { ERROR_UNAVAILABLE, "the backend http://10.0.0.9:8081 cannot be reached" };
    return r;
}

chat_request conversation(const std::string & first, const std::string & salt = "") {
    chat_request r;
    r.messages             = { { "user", first } };
    r.sampling.temperature = 0;
    r.max_tokens           = 32;
    r.cache_salt           = salt;
    return r;
}

double metric(const backend & be, const std::string & name) {
    for (const auto & m : be.stats()) {
        if (m.name == name) return m.value;
    }
    return -1;
}

// A member that streams some text and then fails (a server that died mid-answer).
class dies_mid_answer : public backend {
  public:
    std::unique_ptr<chat_stream> start(const chat_request &) override {
        n++;
        class stream : public chat_stream {
          public:
            uint64_t id() const override { return 1; }
            bool     next(chat_event & ev) override {
                if (i == 0) ev = chat_event::delta(chat_event::CONTENT, "Half an ans");
                else if (i == 1) {
                    ev        = chat_event{};
                    ev.type   = chat_event::DONE;
                    ev.finish = FINISH_ERROR;
                    ev.err    = { ERROR_UNAVAILABLE, "the backend failed mid-answer" };
                } else return false;
                i++;
                return true;
            }
            void cancel() override {}
            int  i = 0;
        };
        return std::make_unique<stream>();
    }
    backend_caps caps() const override {
        backend_caps c;
        c.name  = "dying";
        c.n_ctx = 1024;
        return c;
    }
    int n = 0;
};

}  // namespace

struct routing_contract : contract_backend {
    scripted_backend a, b;
    routing_backend  be{ { { &a, { "a" } }, { &b, { "b" } } } };
    routing_contract() {
        a.set_responder([](const chat_request &) { return answer("a"); });
        b.set_responder([](const chat_request &) { return answer("b"); });
    }
    backend & get() override { return be; }
};

std::unique_ptr<contract_backend> make_contract_backend() { return std::make_unique<routing_contract>(); }

// Requests that start alike stay on one member (its prompt cache holds their prefix); other
// conversations spread over both; another user's same words are another conversation.
TEST(routing_backend, a_conversation_stays_on_one_member) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_backend        r({ { &a, { "a" } }, { &b, { "b" } } });
    std::set<std::string>  homes;
    for (int turn = 0; turn < 6; ++turn) {
        auto req = conversation("Plan my week in Lisbon, please.");
        for (int k = 0; k < turn; ++k) req.messages.push_back({ k % 2 ? "user" : "assistant", "turn " + std::to_string(k) });
        homes.insert(collect(*r.start(req)).content.substr(16, 1));
    }
    EXPECT_EQ(homes.size(), 1u) << "one conversation went to two members";
    std::set<std::string> spread;
    for (int c = 0; c < 20; ++c) spread.insert(collect(*r.start(conversation("Question number " + std::to_string(c)))).content.substr(16, 1));
    EXPECT_EQ(spread.size(), 2u) << "twenty conversations all went to one member";
    std::set<std::string> users;
    for (int u = 0; u < 20; ++u) users.insert(collect(*r.start(conversation("Same words", "user-" + std::to_string(u)))).content.substr(16, 1));
    EXPECT_EQ(users.size(), 2u) << "the cache scope is part of the affinity";
}

// A saturated member gives its conversation to the least loaded other.
TEST(routing_backend, a_saturated_member_passes_requests_on) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_backend r({ { &a, { "a", 1 } }, { &b, { "b", 1 } } });
    auto            req  = conversation("Hello there");
    auto            held = r.start(req);  // not read: in flight on its home member
    const double    a_in = metric(r, "muse_routing_in_flight{backend=\"a\"}");
    const double    b_in = metric(r, "muse_routing_in_flight{backend=\"b\"}");
    ASSERT_EQ(a_in + b_in, 1);
    const std::string other = collect(*r.start(req)).content.substr(16, 1);
    EXPECT_EQ(other, a_in == 1 ? "b" : "a") << "the second request waited for the saturated home";
    EXPECT_FALSE(collect(*held).err);
    EXPECT_EQ(metric(r, "muse_routing_in_flight{backend=\"a\"}") + metric(r, "muse_routing_in_flight{backend=\"b\"}"), 0);
}

// A member that cannot be reached: the request moves to the next before any token, the
// caller sees one clean answer; three failures open its breaker, and requests stop going there
// until the cooldown; then one probe, and a success closes it.
TEST(routing_backend, failover_before_the_first_token_and_the_breaker) {
    scripted_backend a, b;
    bool             a_up = false;
    a.set_responder([&](const chat_request &) { return a_up ? answer("a") : down(); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_params p;
    p.breaker_failures   = 3;
    p.breaker_cooldown_s = 3600;
    p.health_interval_s  = 0;  // the breaker by requests alone (health checks: their own test)
    routing_backend r({ { &a, { "a" } }, { &b, { "b" } } }, p);
    int             answered = 0;
    for (int c = 0; c < 20; ++c) {
        const chat_result res = collect(*r.start(conversation("Conversation " + std::to_string(c))));
        EXPECT_FALSE(res.err) << res.err.message;
        EXPECT_EQ(res.content.substr(16, 1), "b");
        answered += !res.err;
    }
    EXPECT_EQ(answered, 20);
    EXPECT_EQ(a.requests().size(), 3u) << "the breaker opened after 3 failures";
    EXPECT_EQ(metric(r, "muse_routing_failovers_total{backend=\"a\"}"), 3);
    EXPECT_EQ(metric(r, "muse_routing_breaker_open{backend=\"a\"}"), 1);

    // A zero cooldown: the next request probes a, which is back; the breaker closes.
    routing_params q;
    q.breaker_failures   = 1;
    q.breaker_cooldown_s = 0;
    q.health_interval_s  = 0;
    routing_backend r2({ { &a, { "a" } }, { &b, { "b" } } }, q);
    a_up = false;
    for (int c = 0; c < 4; ++c) collect(*r2.start(conversation("Probe " + std::to_string(c))));
    ASSERT_GT(a.requests().size(), 3u) << "a is tried again after each zero cooldown";
    a_up = true;
    bool reached = false;  // new conversations take turns over equally loaded members
    for (int c = 0; c < 4 && !reached; ++c) {
        reached = collect(*r2.start(conversation("After " + std::to_string(c)))).content.substr(16, 1) == "a";
    }
    EXPECT_TRUE(reached) << "after the cooldown a is tried again and answers";
    EXPECT_EQ(metric(r2, "muse_routing_breaker_open{backend=\"a\"}"), 0);
}

// A member that streamed part of an answer and then failed: the caller gets that part and the
// error; nothing is sent again (no duplicated text).
TEST(routing_backend, no_failover_after_text_was_streamed) {
    dies_mid_answer  a;
    scripted_backend b;
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_backend r({ { &a, { "a" } }, { &b, { "b" } } });
    for (int c = 0; c < 20; ++c) collect(*r.start(conversation("Conversation " + std::to_string(c))));
    ASSERT_GT(a.n, 0);
    // A member that fails mid-answer is not "down" before a token: it stays in the rotation,
    // and each request it took ends there.
    routing_params p;
    p.breaker_failures  = 1000;
    p.health_interval_s = 0;
    routing_backend r2({ { &a, { "a" } }, { &b, { "b" } } }, p);
    const size_t b_before = b.requests().size();
    const int    a_before = a.n;
    for (int c = 0; c < 20; ++c) {
        const int         before = a.n;
        const chat_result res    = collect(*r2.start(conversation("Conversation " + std::to_string(c))));
        if (a.n > before) {
            EXPECT_EQ(res.content, "Half an ans") << "the part streamed, once";
            EXPECT_EQ(res.err.code, ERROR_UNAVAILABLE);
        } else {
            EXPECT_FALSE(res.err) << res.err.message;
        }
    }
    ASSERT_GT(a.n - a_before, 0);
    EXPECT_EQ(b.requests().size() - b_before, (size_t) (20 - (a.n - a_before))) << "a request that streamed on a was sent to b too";
}

// A scripted member whose health check the test decides.
class checked_member : public scripted_backend {
  public:
    std::atomic<bool> healthy{ true };
    error health() const override { return healthy ? error{} : error{ ERROR_UNAVAILABLE, "down" }; }
};

// Health checks in the background open a dead member's breaker before any request meets it,
// and close it when the member is back.
TEST(routing_backend, health_checks_open_and_close_the_breaker) {
    checked_member a;
    scripted_backend b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_params p;
    p.health_interval_s  = 0.01;
    p.breaker_cooldown_s = 3600;
    routing_backend r({ { &a, { "a" } }, { &b, { "b" } } }, p);
    const std::string open = "muse_routing_breaker_open{backend=\"a\"}";
    // Waits (bounded) for the checker to run `rounds` more rounds: an observable count.
    auto rounds = [&](int n) {
        const double until = metric(r, "muse_routing_health_checks_total") + n;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (metric(r, "muse_routing_health_checks_total") < until && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return metric(r, "muse_routing_health_checks_total") >= until;
    };
    ASSERT_TRUE(rounds(1));
    EXPECT_EQ(metric(r, open), 0);
    a.healthy = false;
    ASSERT_TRUE(rounds(2));
    EXPECT_EQ(metric(r, open), 1) << "a failing health check opens the breaker";
    const size_t before = a.requests().size();
    for (int c = 0; c < 10; ++c) EXPECT_FALSE(collect(*r.start(conversation("Conversation " + std::to_string(c)))).err);
    EXPECT_EQ(a.requests().size(), before) << "no request was sent to a member known to be down";
    a.healthy = true;
    ASSERT_TRUE(rounds(2));
    EXPECT_EQ(metric(r, open), 0) << "a passing health check closes it, without waiting out the cooldown";
}

// Every member down: the last member's error, as ERROR_UNAVAILABLE.
TEST(routing_backend, every_member_down_is_one_clear_error) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return down(); });
    b.set_responder([](const chat_request &) { return down(); });
    routing_backend   r({ { &a, { "a" } }, { &b, { "b" } } });
    const chat_result res = collect(*r.start(conversation("hi")));
    EXPECT_EQ(res.err.code, ERROR_UNAVAILABLE);
    EXPECT_NE(res.err.message.find("cannot be reached"), std::string::npos) << res.err.message;
    EXPECT_EQ(a.requests().size() + b.requests().size(), 2u) << "each member tried once";
    const auto meta = nlohmann::json::parse(r.caps().meta_json);
    EXPECT_EQ(meta["backend"], "routing");
    EXPECT_EQ(meta["members"].size(), 2u);
}


// New conversations go to the member with the fewest requests in flight: a slow member whose
// requests pile up gets none of them, while conversations it already holds stay until it is
// clearly busier than the other (balance_abs, balance_rel).
TEST(routing_backend, a_busy_member_gets_no_new_conversations) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_params p;
    p.health_interval_s = 0;
    p.balance_abs       = 2;
    p.balance_rel       = 1.5;
    routing_backend r({ { &a, { "a" } }, { &b, { "b" } } }, p);
    // A conversation that lives on a.
    std::string mine;
    for (int c = 0; c < 4 && mine.empty(); ++c) {
        const std::string k = "Mine " + std::to_string(c);
        if (collect(*r.start(conversation(k))).content.substr(16, 1) == "a") mine = k;
    }
    ASSERT_FALSE(mine.empty());
    // Two of its requests held open on a (not read): a slow server.
    std::vector<std::unique_ptr<chat_stream>> held;
    for (int c = 0; c < 2; ++c) held.push_back(r.start(conversation(mine)));
    ASSERT_EQ(metric(r, "muse_routing_in_flight{backend=\"a\"}"), 2);
    for (int c = 0; c < 10; ++c) {
        EXPECT_EQ(collect(*r.start(conversation("New " + std::to_string(c)))).content.substr(16, 1), "b") << "a new conversation went to the busy member";
    }
    // Busier by 2, not more: the conversation keeps its member (its prompt cache).
    EXPECT_EQ(collect(*r.start(conversation(mine))).content.substr(16, 1), "a");
    // Busier by 3 (> balance_abs, and infinitely more than 0): it moves.
    held.push_back(r.start(conversation(mine)));
    ASSERT_EQ(metric(r, "muse_routing_in_flight{backend=\"a\"}"), 3);
    EXPECT_EQ(collect(*r.start(conversation(mine))).content.substr(16, 1), "b") << "affinity did not yield to a clearly busier member";
    EXPECT_GE(metric(r, "muse_routing_affinity_moves_total"), 1);
    EXPECT_GE(metric(r, "muse_routing_affinity_hits_total"), 1);
    for (auto & s : held) EXPECT_FALSE(collect(*s).err);
    EXPECT_EQ(metric(r, "muse_routing_in_flight{backend=\"a\"}"), 0);
    EXPECT_GT(metric(r, "muse_routing_completed_total{backend=\"a\"}"), 0);
    EXPECT_GE(metric(r, "muse_routing_request_seconds_total{backend=\"a\"}"), 0);
}

// Weights share the load: with requests held open, a member of weight 3 takes three for each
// one of weight 1.
TEST(routing_backend, weights_share_the_load) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_params p;
    p.health_interval_s = 0;
    routing_backend r({ { &a, { "a", 0, 3 } }, { &b, { "b", 0, 1 } } }, p);
    std::vector<std::unique_ptr<chat_stream>> held;
    for (int c = 0; c < 8; ++c) held.push_back(r.start(conversation("Held " + std::to_string(c))));
    EXPECT_EQ(metric(r, "muse_routing_in_flight{backend=\"a\"}"), 6);
    EXPECT_EQ(metric(r, "muse_routing_in_flight{backend=\"b\"}"), 2);
    for (auto & s : held) EXPECT_FALSE(collect(*s).err);
}

// Round robin and least-loaded leave affinity out: one conversation's turns spread.
TEST(routing_backend, policies_without_affinity_spread_a_conversation) {
    routing_policy pol;
    ASSERT_TRUE(parse_routing_policy("round-robin", pol));
    EXPECT_EQ(pol, routing_policy::round_robin);
    ASSERT_TRUE(parse_routing_policy("least_loaded", pol));
    EXPECT_EQ(pol, routing_policy::least_loaded);
    EXPECT_FALSE(parse_routing_policy("random", pol));
    for (routing_policy policy : { routing_policy::round_robin, routing_policy::least_loaded }) {
        scripted_backend a, b;
        a.set_responder([](const chat_request &) { return answer("a"); });
        b.set_responder([](const chat_request &) { return answer("b"); });
        routing_params p;
        p.health_interval_s = 0;
        p.policy            = policy;
        routing_backend       r({ { &a, { "a" } }, { &b, { "b" } } }, p);
        std::set<std::string> homes;
        for (int turn = 0; turn < 4; ++turn) homes.insert(collect(*r.start(conversation("One conversation"))).content.substr(16, 1));
        EXPECT_EQ(homes.size(), 2u) << routing_policy_name(policy);
        EXPECT_EQ(metric(r, "muse_routing_affinity_hits_total"), 0);
        EXPECT_EQ(nlohmann::json::parse(r.caps().meta_json)["policy"], routing_policy_name(policy));
    }
}

// The affinity table is bounded: the least recently used starts are forgotten.
TEST(routing_backend, the_affinity_table_is_bounded) {
    scripted_backend a, b;
    a.set_responder([](const chat_request &) { return answer("a"); });
    b.set_responder([](const chat_request &) { return answer("b"); });
    routing_params p;
    p.health_interval_s = 0;
    p.affinity_entries  = 4;
    routing_backend r({ { &a, { "a" } }, { &b, { "b" } } }, p);
    for (int c = 0; c < 100; ++c) collect(*r.start(conversation("Conversation " + std::to_string(c))));
    EXPECT_EQ(metric(r, "muse_routing_affinity_misses_total"), 100);
    collect(*r.start(conversation("Conversation 99")));  // still remembered
    EXPECT_EQ(metric(r, "muse_routing_affinity_hits_total"), 1);
    collect(*r.start(conversation("Conversation 0")));  // forgotten
    EXPECT_EQ(metric(r, "muse_routing_affinity_misses_total"), 101);
}

}  // namespace muse::test
