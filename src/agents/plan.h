#pragma once
// The contemplating planner's plan: a small DAG of sub-tasks, each given to a specialist role.
//
// Usage: build the planner's constraint with plan_json_schema(limits), run the planner, then
// parse_plan(text, limits, p, why); on false, use fallback_plan(request, why). Schedule with
// plan_ready_tasks() (parallel) or plan_topological_order() (sequential).
//
// The grammar built from the schema only guarantees the shape; parse_plan() still checks what a grammar
// cannot (unique ids, known dependencies, no cycles) and catches output that was cut off mid-JSON.
//
// Thread safety: all functions are pure or read immutable data; specialist_roles() is built once, on
// first use, and is safe to call from any thread.

#include <cstddef>
#include <string>
#include <vector>

namespace muse {

struct specialist_role {
    std::string id;
    std::string description;  // one line, for the planner's prompt
    std::string directive;    // 1-3 sentences of instructions given to an agent in that role
};

// The fixed set of roles a planner may assign, in a stable order; "generalist" is first.
const std::vector<specialist_role> & specialist_roles();

// nullptr when `id` is not a role.
const specialist_role * find_role(const std::string & id);

struct plan_task {
    std::string              id;          // ^[a-z][a-z0-9_]{0,31}$
    std::string              goal;        // non-empty, <= 500 characters (UTF-8 code points)
    std::string              role;        // a specialist_role id
    std::vector<std::string> depends_on;  // ids of other tasks
    std::vector<std::string> tools;       // tool names allowed to this task
};

struct plan {
    std::vector<plan_task> tasks;
    bool                   fallback = false;  // true when this is the one-node fallback
    std::string            rejected;          // why the planner's plan was rejected (set with fallback)
};

struct plan_limits {
    int                      max_tasks = 6;  // clamped to 1..16
    std::vector<std::string> tools;          // tool names that exist (e.g. "calculator", "current_datetime")
};

constexpr int    PLAN_MAX_TASKS_LIMIT = 16;
constexpr size_t PLAN_MAX_GOAL_CHARS  = 500;
constexpr size_t PLAN_MAX_ID_CHARS    = 32;

// JSON schema (text) for the planner's output:
//   {"tasks":[{"id","goal","role","depends_on":[ids],"tools":[names]}]}
// All five task fields are required, additionalProperties is false, 1..max_tasks tasks, role is an enum of
// the role ids, tools an enum of limits.tools (an always-empty array when there are none). Only uses what
// llama.cpp's json-schema-to-grammar supports.
std::string plan_json_schema(const plan_limits & limits);

// Parses and validates a planner's output. On success fills `out` (fallback = false) and returns true.
// On failure returns false, leaves `out` untouched and sets `why` to a one-line reason, e.g.
//   "not JSON: truncated at byte 18", "empty plan: no tasks", "too many tasks: 7 > max 6",
//   "bad id 'A-1': must match ^[a-z][a-z0-9_]{0,31}$", "duplicate id 'a'", "task 'a': unknown role 'wizard'",
//   "task 'a': depends on unknown id 'z'", "task 'a' depends on itself", "cycle: a -> b -> c -> a"
// (a cycle reads along depends_on: "a -> b" means a depends on b).
// Lenient where it costs nothing: a ```json fence around the object is stripped, depends_on and tools may
// be absent (empty), repeated entries in them are dropped, and unknown keys are ignored (so
// plan_to_json() output parses back).
bool parse_plan(const std::string & json_text, const plan_limits & limits, plan & out, std::string & why);

// The one-node plan for an atomic request or a rejected plan: id "answer", role "generalist",
// goal = the request trimmed and cut to 500 characters at a UTF-8 boundary ("(empty request)" when blank),
// no dependencies and no tools (the caller grants tools). fallback = true, rejected = rejected_reason.
plan fallback_plan(const std::string & request, const std::string & rejected_reason);

// Task indexes in an order where every task comes after its dependencies; at each step the first ready
// task in plan order is taken, so an already ordered plan comes back unchanged. Tasks on a cycle or
// depending on an unknown id are left out: a result shorter than p.tasks means an invalid plan.
std::vector<size_t> plan_topological_order(const plan & p);

// Indexes (in plan order) of tasks not started and not done whose dependencies are all done.
// started/done are per task index; missing entries count as false.
std::vector<size_t> plan_ready_tasks(const plan & p, const std::vector<bool> & started, const std::vector<bool> & done);

// One short line for people: "planned 3 sub-tasks", "planned as one task", and for a one-task
// plan the planner did not make, why in a few words ("planned as one task (the planner's plan
// was not usable)"). `rejected` keeps the details.
std::string plan_summary(const plan & p);

// Compact JSON text: {"tasks":[...],"fallback":bool,"summary":plan_summary(p)} plus "rejected"
// when non-empty.
std::string plan_to_json(const plan & p);

}  // namespace muse
