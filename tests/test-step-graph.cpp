// The step graph and its executor (reasoning/step-graph.h): dependencies, a graph that grows
// while it runs, cancellation that reaches a running agent's stream through the token's
// callback (the stream waits on a condition variable with no timeout to poll), halting,
// failures and timings; and the mode registry (reasoning/mode.h) as the shared rules ask it.

#include "agents/agent.h"
#include "app/assistant.h"
#include "backend/scripted-backend.h"
#include "reasoning/mode.h"
#include "reasoning/step-graph.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

using namespace muse;

namespace {

using clock_type = std::chrono::steady_clock;

// A one-shot event a test can wait for (bounded, so that a broken executor fails, not hangs).
class latch {
  public:
    void set() {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
        cv.notify_all();
    }
    bool wait(std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
        std::unique_lock<std::mutex> lk(mu);
        return cv.wait_for(lk, limit, [&] { return done; });
    }
    bool is_set() {
        std::lock_guard<std::mutex> lk(mu);
        return done;
    }

  private:
    std::mutex              mu;
    std::condition_variable cv;
    bool                    done = false;
};

// A stream that produces nothing until it is cancelled: only cancel() ends it.
class endless_stream : public chat_stream {
  public:
    endless_stream(latch & started, std::atomic<int> & cancels) : started(started), cancels(cancels) {}
    uint64_t id() const override { return 1; }
    bool     next(chat_event & ev) override {
        if (finished)
            return false;
        started.set();
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stopped; });  // no timeout: nothing but cancel() can end it
        ev        = chat_event{};
        ev.type   = chat_event::DONE;
        ev.finish = FINISH_CANCELLED;
        finished  = true;
        return true;
    }
    void cancel() override {
        cancels++;
        std::lock_guard<std::mutex> lk(mu);
        stopped = true;
        cv.notify_all();
    }

  private:
    latch &                 started;
    std::atomic<int> &      cancels;
    std::mutex              mu;
    std::condition_variable cv;
    bool                    stopped  = false;
    bool                    finished = false;
};

class endless_backend : public backend {
  public:
    std::unique_ptr<chat_stream> start(const chat_request &) override {
        return std::make_unique<endless_stream>(started, cancels);
    }
    backend_caps caps() const override { return {}; }

    latch            started;
    std::atomic<int> cancels{ 0 };
};

}  // namespace

TEST(step_graph, a_step_runs_after_every_step_it_depends_on_and_independent_steps_run_together) {
    step_graph               g;
    std::mutex               mu;
    std::vector<std::string> order;
    latch                    b_started, c_started;
    auto                     log = [&](const std::string & s) {
        std::lock_guard<std::mutex> lk(mu);
        order.push_back(s);
    };
    const int a = g.add("", {}, [&](step_graph &, int) { log("a"); });
    // b and c both wait for the other to have started: they only end when they run at once.
    const int b = g.add("", { a }, [&](step_graph &, int) {
        b_started.set();
        EXPECT_TRUE(c_started.wait()) << "c did not run beside b";
        log("b");
    });
    const int c = g.add("", { a }, [&](step_graph &, int) {
        c_started.set();
        EXPECT_TRUE(b_started.wait()) << "b did not run beside c";
        log("c");
    });
    g.add("", { b, c }, [&](step_graph &, int) { log("d"); });
    std::vector<step_timing> timings;
    g.execute({}, clock_type::now(), timings);
    ASSERT_EQ(order.size(), 4u);
    EXPECT_EQ(order.front(), "a");
    EXPECT_EQ(order.back(), "d");
    EXPECT_EQ(g.ran(), 4);
    EXPECT_EQ(g.skipped(), 0);
    EXPECT_TRUE(timings.empty()) << "unnamed steps have no timing";
}

TEST(step_graph, a_running_step_grows_the_graph) {
    step_graph       g;
    std::atomic<int> subtasks{ 0 };
    std::atomic<int> after_them{ 0 };
    g.add("plan", {}, [&](step_graph & g, int self) {
        std::vector<int> ids;
        for (int i = 0; i < 3; ++i) {
            ids.push_back(g.add("subtasks", { self }, [&](step_graph &, int) { subtasks++; }));
        }
        // Added while the plan runs, with the new steps as dependencies.
        g.add("aggregate", ids, [&](step_graph &, int) { after_them = subtasks.load(); });
    });
    std::vector<step_timing> timings;
    g.execute({}, clock_type::now(), timings);
    EXPECT_EQ(subtasks.load(), 3);
    EXPECT_EQ(after_them.load(), 3) << "the last step ran after every step it names";
    EXPECT_EQ(g.ran(), 5);
    ASSERT_EQ(timings.size(), 3u) << "steps sharing a timing name form one span";
    EXPECT_EQ(timings[0].step, "plan");
    EXPECT_EQ(timings[1].step, "subtasks");
    EXPECT_EQ(timings[2].step, "aggregate");
    for (size_t i = 0; i < timings.size(); ++i) {
        EXPECT_LE(timings[i].start_ms, timings[i].end_ms) << timings[i].step;
        if (i > 0)
            EXPECT_GE(timings[i].start_ms, timings[i - 1].end_ms) << timings[i].step;
    }
}

TEST(step_graph, timings_span_from_the_first_start_to_the_last_end_on_the_request_clock) {
    step_graph g;
    const auto t0 = clock_type::now() - std::chrono::milliseconds(1000);  // the request began a second ago
    g.add("solvers", {}, [&](step_graph &, int) { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
    g.add("solvers", {}, [&](step_graph &, int) {});
    std::vector<step_timing> timings;
    g.execute({}, t0, timings);
    ASSERT_EQ(timings.size(), 1u);
    EXPECT_EQ(timings[0].step, "solvers");
    EXPECT_GE(timings[0].start_ms, 1000.0);
    EXPECT_GE(timings[0].end_ms - timings[0].start_ms, 30.0) << "the span ends with its slowest step";
}

TEST(step_graph, cancel_reaches_the_running_agents_stream_and_skips_what_has_not_started) {
    endless_backend be;
    tool_registry   tools;
    cancel_source   stop;
    agent_env       env(be, tools);
    env.cancel = stop.get_token();
    step_graph  g;
    agent_trace trace;
    bool        later_ran = false;
    const int   solver    = g.add("solvers", {}, [&](step_graph &, int) {
        agent_spec spec;
        spec.role             = "solver";
        spec.request.messages = { { "user", "q" } };
        trace                 = run_agent(env, spec);
    });
    g.add("aggregate", { solver }, [&](step_graph &, int) { later_ran = true; });

    std::thread              canceller([&] {
        ASSERT_TRUE(be.started.wait()) << "the agent's stream never started";
        stop.request_stop();
    });
    const auto               t = clock_type::now();
    std::vector<step_timing> timings;
    g.execute(stop.get_token(), clock_type::now(), timings);
    canceller.join();
    EXPECT_LT(std::chrono::duration<double>(clock_type::now() - t).count(), 5.0);
    EXPECT_EQ(be.cancels.load(), 1) << "the token's callback cancelled the live stream once";
    EXPECT_EQ(trace.finish, FINISH_CANCELLED);
    EXPECT_FALSE(later_ran) << "a step not started when the request is cancelled never starts";
    EXPECT_EQ(g.ran(), 1);
    EXPECT_EQ(g.skipped(), 1);
}

TEST(step_graph, an_agent_of_a_cancelled_request_starts_no_stream) {
    scripted_reply never;
    never.content = "never read";
    scripted_backend be(std::vector<scripted_reply>{ never });
    tool_registry    tools;
    cancel_source    stop;
    stop.request_stop();
    agent_env env(be, tools);
    env.cancel = stop.get_token();
    agent_spec spec;
    spec.request.messages = { { "user", "q" } };
    const agent_trace t   = run_agent(env, spec);
    EXPECT_EQ(t.finish, FINISH_CANCELLED);
    EXPECT_TRUE(be.requests().empty());
}

TEST(step_graph, halt_and_failures_skip_the_dependents) {
    {
        step_graph g;
        bool       ran = false;
        const int  a   = g.add("", {}, [](step_graph & g, int) { g.halt(); });
        g.add("", { a }, [&](step_graph &, int) { ran = true; });
        std::vector<step_timing> timings;
        g.execute({}, clock_type::now(), timings);
        EXPECT_FALSE(ran);
        EXPECT_EQ(g.skipped(), 1);
        EXPECT_EQ(g.failure(), "");
    }
    {
        step_graph g;
        bool       ran = false;
        const int  a   = g.add("", {}, [](step_graph &, int) { throw std::runtime_error("boom"); });
        g.add("", { a }, [&](step_graph &, int) { ran = true; });
        std::vector<step_timing> timings;
        g.execute({}, clock_type::now(), timings);
        EXPECT_FALSE(ran);
        EXPECT_EQ(g.failure(), "boom");
    }
    step_graph g;
    EXPECT_EQ(g.add("", { 0 }, nullptr), -1) << "a dependency on a step that does not exist";
}

TEST(step_graph, an_agents_events_and_tool_calls_reach_the_env_callback) {
    scripted_backend be;
    scripted_reply   call;
    call.tool_calls = { { "", "calculator", R"({"expression": "6*7"})" } };
    be.add(call);
    be.add({ "", "42" });
    const tool_registry tools = builtin_tools();
    agent_env           env(be, tools);
    env.cache_salt = "scope";
    std::vector<agent_event> events;
    env.on_event = [&](const agent_event & ev) { events.push_back(ev); };
    agent_spec spec;
    spec.role             = "helper";
    spec.request.messages = { { "user", "6 times 7?" } };
    spec.allowed_tools    = { "calculator" };
    spec.max_tool_steps   = 2;
    spec.call_id_prefix   = "call_7";
    const agent_trace t   = run_agent(env, spec);
    EXPECT_EQ(t.role, "helper");
    EXPECT_EQ(t.answer, "42");
    ASSERT_EQ(t.tool_calls.size(), 1u);
    EXPECT_EQ(t.tool_calls[0].result, "42");
    bool tool_event = false;
    for (const auto & ev : events)
        tool_event = tool_event || (ev.type == agent_event::TOOL && ev.text.find("-> 42") != std::string::npos);
    EXPECT_TRUE(tool_event);
    const auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 2u);
    for (const auto & r : reqs)
        EXPECT_EQ(r.cache_salt, "scope") << "every stream carries the env's salt";
    EXPECT_EQ(reqs[1].messages[reqs[1].messages.size() - 2].tool_calls[0].id, "call_7_0_0");
}

TEST(mode_registry, names_order_and_effort_mapping) {
    std::vector<std::string> names;
    for (const mode * m : all_modes())
        names.push_back(m->name());
    EXPECT_EQ(names, (std::vector<std::string>{ "instant", "thinking", "contemplating", "auto" }));
    EXPECT_EQ(mode_name_list(all_modes()), "instant, thinking, contemplating or auto");
    ask_mode m = MODE_AUTO;
    EXPECT_TRUE(parse_ask_mode(" Contemplating\n", m));
    EXPECT_EQ(m, MODE_CONTEMPLATING);
    EXPECT_FALSE(parse_ask_mode("pondering", m));
    EXPECT_STREQ(ask_mode_name(MODE_THINKING), "thinking");
    EXPECT_STREQ(ask_mode_name((ask_mode)42), "unknown");
    EXPECT_EQ(effort_name_list(), "none, minimal, low, medium, high or xhigh");
    ASSERT_NE(find_effort("xhigh"), nullptr);
    EXPECT_EQ(find_effort("xhigh")->mode, MODE_CONTEMPLATING);
    EXPECT_EQ(find_effort("none")->mode, MODE_INSTANT);
    EXPECT_EQ(find_effort("medium")->budget, 2048);
    EXPECT_EQ(find_effort("maximal"), nullptr);
    EXPECT_TRUE(find_mode(MODE_CONTEMPLATING).traits().needs_fork);
    EXPECT_TRUE(find_mode(MODE_AUTO).traits().routes);
}

// The shared rules (app/assistant.h) refuse and normalise exactly as each mode's traits say.
TEST(mode_registry, the_shared_rules_follow_the_traits) {
    for (const mode * m : all_modes()) {
        const mode_traits t = m->traits();
        SCOPED_TRACE(m->name());
        auto base = [&] {
            ask_request r;
            r.messages = { { "user", "q" } };
            r.opt.mode = m->id();
            return r;
        };
        {
            ask_request r     = base();
            r.opt.json_schema = R"({"type":"object"})";
            ask_refusal why;
            const error e = check_ask_rules(r, 1, 16, &why);
            EXPECT_EQ((bool)e, !t.allows_json_schema) << e.message;
            if (e) {
                EXPECT_EQ(why.field, "json_schema");
                EXPECT_NE(e.message.find(m->name()), std::string::npos) << e.message;
            } else {
                EXPECT_EQ(r.opt.mode, t.routes ? MODE_INSTANT : m->id()) << "a schema on a routing mode means instant";
            }
        }
        {
            ask_request r      = base();
            r.opt.client_tools = { { "lookup", "looks up", R"({"type":"object"})" } };
            ask_refusal why;
            const error e = check_ask_rules(r, 1, 16, &why);
            EXPECT_EQ((bool)e, !t.allows_client_tools) << e.message;
            if (e)
                EXPECT_EQ(why.field, "tools");
        }
        {
            ask_request r = base();
            ask_refusal why;
            const error e = check_ask_rules(r, 2, 16, &why);
            EXPECT_EQ((bool)e, !t.allows_n) << e.message;
            if (e)
                EXPECT_EQ(why.field, "n");
        }
        {
            ask_request r = base();
            ASSERT_FALSE(r.opt.tools.empty());
            EXPECT_FALSE(check_ask_rules(r, 1, 16));
            EXPECT_EQ(r.opt.tools.empty(), !t.builtin_tools) << "a mode without built-in tools offers none";
        }
    }
}
