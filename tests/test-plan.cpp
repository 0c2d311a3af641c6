#include "agents/plan.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

using namespace muse;

namespace {

plan_limits limits6() {
    plan_limits l;
    l.max_tasks = 6;
    l.tools     = { "calculator", "current_datetime" };
    return l;
}

// Parses text that must be rejected and returns the reason.
std::string rejection(const std::string & text, const plan_limits & limits = limits6()) {
    plan        p;
    std::string why;
    EXPECT_FALSE(parse_plan(text, limits, p, why)) << text;
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find('\n'), std::string::npos);
    EXPECT_TRUE(p.tasks.empty()) << "out must be untouched on failure";
    return why;
}

std::string task_json(const std::string & id, const std::string & deps = "", const std::string & role = "generalist",
                      const std::string & tools = "") {
    return R"({"id":")" + id + R"(","goal":"do )" + id + R"(","role":")" + role + R"(","depends_on":[)" + deps +
           R"(],"tools":[)" + tools + "]}";
}

std::string plan_json(const std::vector<std::string> & tasks) {
    std::string s = R"({"tasks":[)";
    for (size_t i = 0; i < tasks.size(); ++i) {
        s += (i ? "," : "") + tasks[i];
    }
    return s + "]}";
}

plan make_plan(const std::vector<std::pair<std::string, std::vector<std::string>>> & nodes) {
    plan p;
    for (const auto & [id, deps] : nodes) {
        p.tasks.push_back({ id, "do " + id, "generalist", deps, {} });
    }
    return p;
}

size_t position(const std::vector<size_t> & order, size_t i) {
    return (size_t) (std::find(order.begin(), order.end(), i) - order.begin());
}

}  // namespace

TEST(plan, roles) {
    const auto & roles = specialist_roles();
    ASSERT_GE(roles.size(), 8u);
    EXPECT_EQ(roles[0].id, "generalist");
    for (const char * id : { "generalist", "analyst", "mathematician", "coder", "researcher", "writer", "fact_checker",
                             "data_analyst" }) {
        const specialist_role * r = find_role(id);
        ASSERT_NE(r, nullptr) << id;
        EXPECT_EQ(r->id, id);
        EXPECT_FALSE(r->description.empty());
        EXPECT_GT(r->directive.size(), 40u);
    }
    EXPECT_EQ(find_role("wizard"), nullptr);
    EXPECT_EQ(find_role(""), nullptr);
}

TEST(plan, parses_valid_dag) {
    const std::string text = R"({"tasks":[
        {"id":"facts","goal":"Find the orbital period of Mars","role":"researcher","depends_on":[],"tools":[]},
        {"id":"calc_1","goal":"Compute the synodic period","role":"mathematician","depends_on":["facts"],
         "tools":["calculator"]},
        {"id":"answer","goal":"Write the final answer","role":"writer","depends_on":["facts","calc_1"],
         "tools":["current_datetime","calculator"]}]})";
    plan        p;
    std::string why;
    ASSERT_TRUE(parse_plan(text, limits6(), p, why)) << why;
    EXPECT_FALSE(p.fallback);
    EXPECT_TRUE(p.rejected.empty());
    ASSERT_EQ(p.tasks.size(), 3u);
    EXPECT_EQ(p.tasks[0].id, "facts");
    EXPECT_EQ(p.tasks[0].goal, "Find the orbital period of Mars");
    EXPECT_EQ(p.tasks[0].role, "researcher");
    EXPECT_TRUE(p.tasks[0].depends_on.empty());
    EXPECT_EQ(p.tasks[1].id, "calc_1");
    EXPECT_EQ(p.tasks[1].role, "mathematician");
    EXPECT_EQ(p.tasks[1].depends_on, std::vector<std::string>{ "facts" });
    EXPECT_EQ(p.tasks[1].tools, std::vector<std::string>{ "calculator" });
    EXPECT_EQ(p.tasks[2].depends_on, (std::vector<std::string>{ "facts", "calc_1" }));
    EXPECT_EQ(p.tasks[2].tools, (std::vector<std::string>{ "current_datetime", "calculator" }));

    // plan_to_json output parses back to the same plan.
    plan        q;
    std::string why2;
    ASSERT_TRUE(parse_plan(plan_to_json(p), limits6(), q, why2)) << why2;
    ASSERT_EQ(q.tasks.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(q.tasks[i].id, p.tasks[i].id);
        EXPECT_EQ(q.tasks[i].goal, p.tasks[i].goal);
        EXPECT_EQ(q.tasks[i].role, p.tasks[i].role);
        EXPECT_EQ(q.tasks[i].depends_on, p.tasks[i].depends_on);
        EXPECT_EQ(q.tasks[i].tools, p.tasks[i].tools);
    }
}

TEST(plan, lenient_parsing) {
    plan        p;
    std::string why;
    // Fenced, optional arrays absent, a dependency named before its task, repeated dependency dropped.
    const std::string body = plan_json({ R"({"id":"b","goal":"g","role":"writer","depends_on":["a","a"]})",
                                         R"({"id":"a","goal":"g","role":"analyst","extra":1})" });
    const std::string text = "```json\n" + body + "\n```";
    ASSERT_TRUE(parse_plan(text, limits6(), p, why)) << why;
    ASSERT_EQ(p.tasks.size(), 2u);
    EXPECT_EQ(p.tasks[0].depends_on, std::vector<std::string>{ "a" });
    EXPECT_TRUE(p.tasks[1].tools.empty());
}

TEST(plan, rejects_not_json) {
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a")").find("not JSON: truncated"), std::string::npos);
    EXPECT_NE(rejection("").find("not JSON"), std::string::npos);
    EXPECT_NE(rejection(R"({"tasks": [} ])").find("not JSON: syntax error"), std::string::npos);
}

TEST(plan, rejects_wrong_shape) {
    EXPECT_NE(rejection("[1,2]").find("not a JSON object"), std::string::npos);
    EXPECT_NE(rejection(R"("tasks")").find("not a JSON object"), std::string::npos);
    EXPECT_NE(rejection(R"({"steps":[]})").find("missing field: tasks"), std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":{}})").find("tasks must be an array"), std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[3]})").find("task 1 is not an object"), std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a","goal":1,"role":"writer"}]})").find("goal must be a string"),
              std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a","goal":"g","role":"writer","tools":"calculator"}]})")
                  .find("tools must be an array"),
              std::string::npos);
}

TEST(plan, rejects_missing_field) {
    EXPECT_NE(rejection(R"({"tasks":[{"goal":"g","role":"writer"}]})").find("missing field: task 1 has no id"),
              std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a","role":"writer"}]})").find("missing field: task 'a' has no goal"),
              std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a","goal":"g"}]})").find("has no role"), std::string::npos);
}

TEST(plan, rejects_empty_and_too_many) {
    EXPECT_NE(rejection(R"({"tasks":[]})").find("empty plan"), std::string::npos);
    std::vector<std::string> tasks;
    for (int i = 0; i < 7; ++i) {
        tasks.push_back(task_json("t" + std::to_string(i)));
    }
    EXPECT_NE(rejection(plan_json(tasks)).find("too many tasks: 7 > max 6"), std::string::npos);

    // max_tasks is clamped to 1..16.
    plan_limits l = limits6();
    l.max_tasks   = 0;
    EXPECT_NE(rejection(plan_json({ task_json("a"), task_json("b") }), l).find("too many tasks: 2 > max 1"),
              std::string::npos);
}

TEST(plan, rejects_bad_values) {
    EXPECT_NE(rejection(plan_json({ task_json("A-1") })).find("bad id 'A-1'"), std::string::npos);
    EXPECT_NE(rejection(plan_json({ task_json("a123456789012345678901234567890123") })).find("bad id"),
              std::string::npos);
    EXPECT_NE(rejection(plan_json({ task_json("a"), task_json("a") })).find("duplicate id 'a'"), std::string::npos);
    EXPECT_NE(rejection(plan_json({ task_json("a", "", "wizard") })).find("task 'a': unknown role 'wizard'"),
              std::string::npos);
    const std::string shell = plan_json({ task_json("a", "", "coder", R"("shell")") });
    EXPECT_NE(rejection(shell).find("task 'a': unknown tool 'shell'"), std::string::npos);
    EXPECT_NE(rejection(R"({"tasks":[{"id":"a","goal":"  ","role":"writer"}]})").find("empty goal"),
              std::string::npos);
    const std::string long_goal = R"({"tasks":[{"id":"a","goal":")" + std::string(501, 'x') + R"(","role":"writer"}]})";
    EXPECT_NE(rejection(long_goal).find("goal too long (501 > 500 chars)"), std::string::npos);
}

TEST(plan, rejects_bad_dependencies) {
    const std::string unknown = plan_json({ task_json("a"), task_json("b", R"("z")") });
    EXPECT_NE(rejection(unknown).find("task 'b': depends on unknown id 'z'"), std::string::npos);
    EXPECT_NE(rejection(plan_json({ task_json("a", R"("a")") })).find("task 'a' depends on itself"), std::string::npos);
    const std::string why =
        rejection(plan_json({ task_json("a", R"("b")"), task_json("b", R"("c")"), task_json("c", R"("a")") }));
    EXPECT_NE(why.find("cycle: a -> b -> c -> a"), std::string::npos) << why;
    // A cycle not reachable from the first task is still found, and only its members are named.
    const std::string why2 =
        rejection(plan_json({ task_json("root"), task_json("x", R"("root","y")"), task_json("y", R"("x")") }));
    EXPECT_NE(why2.find("cycle: x -> y -> x"), std::string::npos) << why2;
}

TEST(plan, json_schema) {
    const std::string text = plan_json_schema(limits6());
    const auto        j    = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    EXPECT_EQ(j["additionalProperties"], false);
    const auto & tasks = j["properties"]["tasks"];
    EXPECT_EQ(tasks["minItems"], 1);
    EXPECT_EQ(tasks["maxItems"], 6);
    const auto & item = tasks["items"];
    EXPECT_EQ(item["additionalProperties"], false);
    EXPECT_EQ(item["required"].size(), 5u);
    const auto & roles = item["properties"]["role"]["enum"];
    ASSERT_EQ(roles.size(), specialist_roles().size());
    EXPECT_EQ(roles[0], "generalist");
    EXPECT_NE(std::find(roles.begin(), roles.end(), "data_analyst"), roles.end());
    EXPECT_EQ(item["properties"]["tools"]["items"]["enum"], nlohmann::json({ "calculator", "current_datetime" }));
    EXPECT_EQ(item["properties"]["goal"]["maxLength"], 500);
    EXPECT_EQ(item["properties"]["depends_on"]["maxItems"], 5);

    // No tools: an array that must stay empty, never an empty enum.
    const auto none = nlohmann::json::parse(plan_json_schema(plan_limits{ 20, {} }));
    EXPECT_EQ(none["properties"]["tasks"]["maxItems"], 16);
    const auto & tools = none["properties"]["tasks"]["items"]["properties"]["tools"];
    EXPECT_EQ(tools["maxItems"], 0);
    EXPECT_FALSE(tools["items"].contains("enum"));
}

TEST(plan, topological_order) {
    // d depends on b and c, b on a, listed out of order.
    const plan p = make_plan({ { "d", { "b", "c" } }, { "b", { "a" } }, { "c", {} }, { "a", {} } });
    const auto order = plan_topological_order(p);
    ASSERT_EQ(order.size(), 4u);
    for (size_t i = 0; i < p.tasks.size(); ++i) {
        for (const auto & dep : p.tasks[i].depends_on) {
            const size_t d = (size_t) (std::find_if(p.tasks.begin(), p.tasks.end(),
                                                    [&](const plan_task & t) { return t.id == dep; }) -
                                       p.tasks.begin());
            EXPECT_LT(position(order, d), position(order, i));
        }
    }
    // Stable: the first ready task in plan order is taken each step.
    EXPECT_EQ(order, (std::vector<size_t>{ 2, 3, 1, 0 }));

    // An already ordered plan comes back unchanged.
    const plan ordered = make_plan({ { "a", {} }, { "b", { "a" } }, { "c", {} }, { "d", { "c", "b" } } });
    EXPECT_EQ(plan_topological_order(ordered), (std::vector<size_t>{ 0, 1, 2, 3 }));

    // Invalid plans: tasks on a cycle or with unknown dependencies are left out.
    const plan cyclic = make_plan({ { "a", {} }, { "b", { "c" } }, { "c", { "b" } }, { "d", { "zz" } } });
    EXPECT_EQ(plan_topological_order(cyclic), std::vector<size_t>{ 0 });
}

TEST(plan, ready_tasks_diamond) {
    const plan p = make_plan({ { "a", {} }, { "b", { "a" } }, { "c", { "a" } }, { "d", { "b", "c" } } });
    std::vector<bool> started(4, false), done(4, false);

    EXPECT_EQ(plan_ready_tasks(p, started, done), std::vector<size_t>{ 0 });
    started[0] = true;
    EXPECT_TRUE(plan_ready_tasks(p, started, done).empty());
    done[0] = true;
    EXPECT_EQ(plan_ready_tasks(p, started, done), (std::vector<size_t>{ 1, 2 }));
    started[1] = started[2] = true;
    EXPECT_TRUE(plan_ready_tasks(p, started, done).empty());
    done[1] = true;
    EXPECT_TRUE(plan_ready_tasks(p, started, done).empty()) << "d waits for c";
    done[2] = true;
    EXPECT_EQ(plan_ready_tasks(p, started, done), std::vector<size_t>{ 3 });
    started[3] = done[3] = true;
    EXPECT_TRUE(plan_ready_tasks(p, started, done).empty());

    // Short vectors count as all false.
    EXPECT_EQ(plan_ready_tasks(p, {}, {}), std::vector<size_t>{ 0 });
}

TEST(plan, fallback) {
    const plan p = fallback_plan("  What is 2 + 2?  ", "not JSON: truncated at byte 18");
    EXPECT_TRUE(p.fallback);
    EXPECT_EQ(p.rejected, "not JSON: truncated at byte 18");
    ASSERT_EQ(p.tasks.size(), 1u);
    EXPECT_EQ(p.tasks[0].id, "answer");
    EXPECT_EQ(p.tasks[0].role, "generalist");
    EXPECT_EQ(p.tasks[0].goal, "What is 2 + 2?");
    EXPECT_TRUE(p.tasks[0].depends_on.empty());
    EXPECT_TRUE(p.tasks[0].tools.empty());

    // Truncated to 500 code points, never inside a UTF-8 character.
    std::string long_request;
    for (int i = 0; i < 600; ++i) {
        long_request += "\xc3\xa9";  // é
    }
    const plan q = fallback_plan(long_request, "");
    EXPECT_EQ(q.tasks[0].goal.size(), 1000u);
    EXPECT_TRUE(q.rejected.empty());

    EXPECT_FALSE(fallback_plan("   ", "x").tasks[0].goal.empty());

    // The fallback plan is itself valid.
    plan        r;
    std::string why;
    EXPECT_TRUE(parse_plan(plan_to_json(p), limits6(), r, why)) << why;
}

TEST(plan, to_json) {
    const auto j = nlohmann::json::parse(plan_to_json(fallback_plan("hello", "empty plan: no tasks")));
    EXPECT_EQ(j["fallback"], true);
    EXPECT_EQ(j["rejected"], "empty plan: no tasks");
    EXPECT_EQ(j["tasks"][0]["id"], "answer");
    EXPECT_TRUE(j["tasks"][0]["depends_on"].is_array());

    const auto k = nlohmann::json::parse(plan_to_json(make_plan({ { "a", {} } })));
    EXPECT_EQ(k["fallback"], false);
    EXPECT_FALSE(k.contains("rejected"));
    const char * expected =
        R"({"tasks":[{"id":"a","goal":"do a","role":"generalist","depends_on":[],"tools":[]}],"fallback":false,"summary":"planned as one task"})";
    EXPECT_EQ(plan_to_json(make_plan({ { "a", {} } })), expected);
}

// The summary is what a person reads: how the request was planned, and for a one-task plan the
// planner did not make, why in a few plain words (never the parser's own message).
TEST(plan, summary_in_words) {
    EXPECT_EQ(plan_summary(make_plan({ { "a", {} }, { "b", { "a" } }, { "c", {} } })), "planned 3 sub-tasks");
    EXPECT_EQ(plan_summary(make_plan({ { "a", {} } })), "planned as one task");
    const plan fb = fallback_plan("hello", "task 'b': depends on unknown id 'zz'");
    EXPECT_EQ(plan_summary(fb), "planned as one task (the planner's plan was not usable)");
    EXPECT_EQ(nlohmann::json::parse(plan_to_json(fb))["summary"], plan_summary(fb));
    EXPECT_EQ(nlohmann::json::parse(plan_to_json(fb))["rejected"], "task 'b': depends on unknown id 'zz'") << "the details stay for the trace";
}
