#include "plan.h"

#include "core/json-depth.h"
#include "core/limits.h"
#include "core/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace muse {

using json = nlohmann::json;

const std::vector<specialist_role> & specialist_roles() {
    static const std::vector<specialist_role> roles = {
        { "generalist", "answers directly; use when no specialty fits",
          "Answer the goal directly and completely, using the results you are given. "
          "Be concise, and say plainly when something is uncertain." },
        { "analyst", "breaks a problem down, weighs options and trade-offs, draws conclusions",
          "Break the problem into its parts, weigh the options against explicit criteria and state the "
          "trade-offs. End with a clear conclusion and the assumptions it rests on." },
        { "mathematician", "exact calculation, algebra, probability, proofs",
          "Work the problem step by step, showing each step, and use the calculator tool for any non-trivial "
          "arithmetic instead of mental math. Check the result (substitute it back or estimate) and state the "
          "final answer with units." },
        { "coder", "writes, explains, reviews or debugs code",
          "Write correct, minimal, idiomatic code for the goal, in the language asked for (or the obvious one). "
          "Handle edge cases and errors, and say how to run or test it; when debugging, name the cause before "
          "the fix." },
        { "researcher", "gathers the relevant facts, definitions and background",
          "Collect the facts, definitions and background the goal needs, as a short structured list. "
          "Separate what is well established from what is uncertain or may be out of date, and do not "
          "invent sources or figures." },
        { "writer", "turns material into clear prose in a requested tone and format",
          "Turn the material you are given into clear, well-organized prose in the requested tone, length and "
          "format. Keep every fact from the inputs unchanged and add none of your own." },
        { "fact_checker", "verifies claims, numbers and reasoning from other tasks",
          "Check each claim, number and reasoning step in the inputs and mark it correct, wrong (with the "
          "correction) or unverifiable. Recompute numbers rather than trusting them." },
        { "data_analyst", "queries and summarizes attached tables and data",
          "Answer from the attached data, querying it with the table tools rather than guessing values. "
          "Report the figures you used, how you computed them, and any gaps or anomalies in the data." },
    };
    return roles;
}

const specialist_role * find_role(const std::string & id) {
    for (const auto & r : specialist_roles()) {
        if (r.id == id) {
            return &r;
        }
    }
    return nullptr;
}

static const char * ID_PATTERN = "^[a-z][a-z0-9_]{0,31}$";

static bool valid_id(const std::string & id) {
    if (id.empty() || id.size() > PLAN_MAX_ID_CHARS || id[0] < 'a' || id[0] > 'z') {
        return false;
    }
    return std::all_of(id.begin(), id.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

static std::string trim(const std::string & s) {
    const char * ws = " \t\r\n\f\v";
    const size_t b  = s.find_first_not_of(ws);
    if (b == std::string::npos) {
        return "";
    }
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

static int clamp_max_tasks(int n) {
    return std::clamp(n, 1, PLAN_MAX_TASKS_LIMIT);
}

// Unique names, first occurrence kept.
static std::vector<std::string> unique(const std::vector<std::string> & v) {
    std::vector<std::string> out;
    for (const auto & s : v) {
        if (std::find(out.begin(), out.end(), s) == out.end()) {
            out.push_back(s);
        }
    }
    return out;
}

std::string plan_json_schema(const plan_limits & limits) {
    const int max_tasks = clamp_max_tasks(limits.max_tasks);

    json::array_t role_ids;
    for (const auto & r : specialist_roles()) {
        role_ids.push_back(r.id);
    }

    nlohmann::ordered_json id_schema = { { "type", "string" }, { "pattern", ID_PATTERN } };

    const auto tool_names = unique(limits.tools);
    // An empty enum would become an empty GBNF alternation; an array that may hold nothing says the same.
    nlohmann::ordered_json tools_schema = { { "type", "array" } };
    if (tool_names.empty()) {
        tools_schema["items"]    = { { "type", "string" } };
        tools_schema["maxItems"] = 0;
    } else {
        tools_schema["items"]    = { { "type", "string" }, { "enum", tool_names } };
        tools_schema["maxItems"] = tool_names.size();
    }

    nlohmann::ordered_json task = {
        { "type", "object" },
        { "properties",
         {
              { "id", id_schema },
              { "goal", { { "type", "string" }, { "minLength", 1 }, { "maxLength", PLAN_MAX_GOAL_CHARS } } },
              { "role", { { "type", "string" }, { "enum", role_ids } } },
              { "depends_on", { { "type", "array" }, { "items", id_schema }, { "maxItems", max_tasks - 1 } } },
              { "tools", tools_schema },
          } },
        { "required", { "id", "goal", "role", "depends_on", "tools" } },
        { "additionalProperties", false },
    };

    nlohmann::ordered_json schema = {
        { "type", "object" },
        { "properties",
         { { "tasks", { { "type", "array" }, { "items", task }, { "minItems", 1 }, { "maxItems", max_tasks } } } } },
        { "required", { "tasks" } },
        { "additionalProperties", false },
    };
    // Tool names come from the caller; replace invalid UTF-8 rather than throw.
    return schema.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Models without a grammar like to wrap JSON in a markdown fence.
static std::string strip_fence(const std::string & text) {
    std::string t = trim(text);
    if (t.rfind("```", 0) != 0) {
        return t;
    }
    const size_t nl = t.find('\n');
    if (nl == std::string::npos) {
        return t;
    }
    t = t.substr(nl + 1);
    const size_t end = t.rfind("```");
    if (end != std::string::npos) {
        t = t.substr(0, end);
    }
    return trim(t);
}

static bool parse_json(const std::string & text, json & j, std::string & why) {
    if (text.empty()) {
        why = "not JSON: empty output";
        return false;
    }
    if (json_text_depth(text, k_max_json_depth) > k_max_json_depth) {
        why = "not a plan: JSON nested more than " + std::to_string(k_max_json_depth) + " levels deep";
        return false;
    }
    try {
        j = json::parse(text);
    } catch (const json::parse_error & e) {
        // The lexer reports the end of input one past the last byte; anything there means the output stopped early.
        if (e.byte >= text.size()) {
            why = "not JSON: truncated at byte " + std::to_string(text.size());
        } else {
            why = "not JSON: syntax error at byte " + std::to_string(e.byte);
        }
        return false;
    } catch (const std::exception & e) {
        why = std::string("not JSON: ") + e.what();
        return false;
    }
    return true;
}

static std::string task_name(const json & t, size_t i) {
    if (t.is_object() && t.contains("id") && t["id"].is_string() && valid_id(t["id"].get<std::string>())) {
        return "task '" + t["id"].get<std::string>() + "'";
    }
    return "task " + std::to_string(i + 1);
}

static bool get_string(const json & t, const char * key, const std::string & name, std::string & out,
                       std::string & why) {
    if (!t.contains(key)) {
        why = "missing field: " + name + " has no " + key;
        return false;
    }
    if (!t[key].is_string()) {
        why = "wrong shape: " + name + ": " + key + " must be a string";
        return false;
    }
    out = t[key].get<std::string>();
    return true;
}

static bool get_strings(const json & t, const char * key, const std::string & name, std::vector<std::string> & out,
                        std::string & why) {
    out.clear();
    if (!t.contains(key) || t[key].is_null()) {
        return true;
    }
    if (!t[key].is_array()) {
        why = "wrong shape: " + name + ": " + key + " must be an array of strings";
        return false;
    }
    for (const auto & v : t[key]) {
        if (!v.is_string()) {
            why = "wrong shape: " + name + ": " + key + " must be an array of strings";
            return false;
        }
        out.push_back(v.get<std::string>());
    }
    out = unique(out);
    return true;
}

static bool parse_task(const json & t, size_t i, const std::vector<std::string> & tools, plan_task & task,
                       std::string & why) {
    const std::string name = task_name(t, i);
    if (!t.is_object()) {
        why = "wrong shape: " + name + " is not an object";
        return false;
    }
    if (!get_string(t, "id", name, task.id, why)) {
        return false;
    }
    if (!valid_id(task.id)) {
        why = "bad id '" + task.id + "': must match " + ID_PATTERN;
        return false;
    }
    if (!get_string(t, "goal", name, task.goal, why) || !get_string(t, "role", name, task.role, why) ||
        !get_strings(t, "depends_on", name, task.depends_on, why) || !get_strings(t, "tools", name, task.tools, why)) {
        return false;
    }
    if (trim(task.goal).empty()) {
        why = name + ": empty goal";
        return false;
    }
    if (const size_t n = utf8_length(task.goal); n > PLAN_MAX_GOAL_CHARS) {
        why = name + ": goal too long (" + std::to_string(n) + " > " + std::to_string(PLAN_MAX_GOAL_CHARS) + " chars)";
        return false;
    }
    if (find_role(task.role) == nullptr) {
        why = name + ": unknown role '" + task.role + "'";
        return false;
    }
    for (const auto & tool : task.tools) {
        if (std::find(tools.begin(), tools.end(), tool) == tools.end()) {
            why = name + ": unknown tool '" + tool + "'";
            return false;
        }
    }
    return true;
}

// Depth-first search along depends_on; returns the first cycle found, as ids with the first repeated at the end.
static std::vector<std::string> find_cycle(const std::vector<plan_task> & tasks) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < tasks.size(); ++i) {
        index.emplace(tasks[i].id, i);
    }
    enum { WHITE, GRAY, BLACK };
    std::vector<int>    color(tasks.size(), WHITE);
    std::vector<size_t> stack;

    // Plans hold at most 16 tasks, so recursion depth is bounded.
    auto visit = [&](auto && self, size_t u) -> std::vector<std::string> {
        color[u] = GRAY;
        stack.push_back(u);
        for (const auto & dep : tasks[u].depends_on) {
            const auto it = index.find(dep);
            if (it == index.end()) {
                continue;
            }
            const size_t v = it->second;
            if (color[v] == GRAY) {
                std::vector<std::string> cycle;
                const auto               from = std::find(stack.begin(), stack.end(), v);
                for (auto s = from; s != stack.end(); ++s) {
                    cycle.push_back(tasks[*s].id);
                }
                cycle.push_back(tasks[v].id);
                return cycle;
            }
            if (color[v] == WHITE) {
                auto cycle = self(self, v);
                if (!cycle.empty()) {
                    return cycle;
                }
            }
        }
        stack.pop_back();
        color[u] = BLACK;
        return {};
    };
    for (size_t i = 0; i < tasks.size(); ++i) {
        if (color[i] == WHITE) {
            auto cycle = visit(visit, i);
            if (!cycle.empty()) {
                return cycle;
            }
        }
    }
    return {};
}

bool parse_plan(const std::string & json_text, const plan_limits & limits, plan & out, std::string & why) {
    try {
        json j;
        if (!parse_json(strip_fence(json_text), j, why)) {
            return false;
        }
        if (!j.is_object()) {
            why = "wrong shape: the plan is not a JSON object";
            return false;
        }
        if (!j.contains("tasks")) {
            why = "missing field: tasks";
            return false;
        }
        const json & jt = j["tasks"];
        if (!jt.is_array()) {
            why = "wrong shape: tasks must be an array";
            return false;
        }
        if (jt.empty()) {
            why = "empty plan: no tasks";
            return false;
        }
        const int max_tasks = clamp_max_tasks(limits.max_tasks);
        if (jt.size() > (size_t) max_tasks) {
            why = "too many tasks: " + std::to_string(jt.size()) + " > max " + std::to_string(max_tasks);
            return false;
        }

        plan p;
        for (size_t i = 0; i < jt.size(); ++i) {
            plan_task task;
            if (!parse_task(jt[i], i, limits.tools, task, why)) {
                return false;
            }
            for (const auto & prev : p.tasks) {
                if (prev.id == task.id) {
                    why = "duplicate id '" + task.id + "'";
                    return false;
                }
            }
            p.tasks.push_back(std::move(task));
        }

        // Dependencies are checked once every id is known: a task may name one listed after it.
        for (const auto & task : p.tasks) {
            for (const auto & dep : task.depends_on) {
                if (dep == task.id) {
                    why = "task '" + task.id + "' depends on itself";
                    return false;
                }
                const bool known = std::any_of(p.tasks.begin(), p.tasks.end(),
                                               [&](const plan_task & t) { return t.id == dep; });
                if (!known) {
                    why = "task '" + task.id + "': depends on unknown id '" + dep + "'";
                    return false;
                }
            }
        }
        if (const auto cycle = find_cycle(p.tasks); !cycle.empty()) {
            why = "cycle: ";
            for (size_t i = 0; i < cycle.size(); ++i) {
                why += (i ? " -> " : "") + cycle[i];
            }
            return false;
        }

        out = std::move(p);
        return true;
    } catch (const std::exception & e) {
        // Only allocation failure is expected here; keep the no-throw contract anyway.
        why = std::string("internal error: ") + e.what();
        return false;
    }
}

plan fallback_plan(const std::string & request, const std::string & rejected_reason) {
    std::string goal = trim(request);
    if (goal.empty()) {
        goal = "(empty request)";
    }
    goal.resize(utf8_prefix_bytes(goal, PLAN_MAX_GOAL_CHARS));

    plan p;
    p.tasks.push_back({ "answer", goal, "generalist", {}, {} });
    p.fallback = true;
    p.rejected = rejected_reason;
    return p;
}

// For each task, the indexes of its dependencies; -1 marks an id not in the plan (never satisfiable).
static std::vector<std::vector<long>> dependency_indexes(const plan & p) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < p.tasks.size(); ++i) {
        index.emplace(p.tasks[i].id, i);
    }
    std::vector<std::vector<long>> deps(p.tasks.size());
    for (size_t i = 0; i < p.tasks.size(); ++i) {
        for (const auto & d : p.tasks[i].depends_on) {
            const auto it = index.find(d);
            deps[i].push_back(it == index.end() ? -1 : (long) it->second);
        }
    }
    return deps;
}

std::vector<size_t> plan_topological_order(const plan & p) {
    const auto          deps = dependency_indexes(p);
    std::vector<bool>   emitted(p.tasks.size(), false);
    std::vector<size_t> order;
    // Quadratic, but plans are tiny and this keeps "first ready task in plan order" obvious.
    for (bool progress = true; progress;) {
        progress = false;
        for (size_t i = 0; i < p.tasks.size(); ++i) {
            if (emitted[i]) {
                continue;
            }
            const bool ready =
                std::all_of(deps[i].begin(), deps[i].end(), [&](long d) { return d >= 0 && emitted[(size_t) d]; });
            if (ready) {
                emitted[i] = true;
                order.push_back(i);
                progress = true;
                break;
            }
        }
    }
    return order;
}

std::vector<size_t> plan_ready_tasks(const plan & p, const std::vector<bool> & started,
                                     const std::vector<bool> & done) {
    auto at = [](const std::vector<bool> & v, size_t i) { return i < v.size() && v[i]; };

    const auto          deps = dependency_indexes(p);
    std::vector<size_t> ready;
    for (size_t i = 0; i < p.tasks.size(); ++i) {
        if (at(started, i) || at(done, i)) {
            continue;
        }
        if (std::all_of(deps[i].begin(), deps[i].end(), [&](long d) { return d >= 0 && at(done, (size_t) d); })) {
            ready.push_back(i);
        }
    }
    return ready;
}

std::string plan_summary(const plan & p) {
    if (p.tasks.size() > 1) {
        return "planned " + std::to_string(p.tasks.size()) + " sub-tasks";
    }
    if (p.fallback) {
        return "planned as one task (the planner's plan was not usable)";
    }
    if (!p.rejected.empty()) {
        return "planned as one task (the planner was skipped)";
    }
    return "planned as one task";
}

std::string plan_to_json(const plan & p) {
    nlohmann::ordered_json tasks = nlohmann::ordered_json::array();
    for (const auto & t : p.tasks) {
        tasks.push_back({
            { "id", t.id },
            { "goal", t.goal },
            { "role", t.role },
            { "depends_on", t.depends_on },
            { "tools", t.tools },
        });
    }
    nlohmann::ordered_json j = {
        { "tasks", tasks },
        { "fallback", p.fallback },
        { "summary", plan_summary(p) },
    };
    if (!p.rejected.empty()) {
        j["rejected"] = p.rejected;
    }
    // Goals come from a model; replace invalid UTF-8 rather than throw.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace muse
