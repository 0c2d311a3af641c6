#include "result-json.h"

namespace muse {

using json = nlohmann::ordered_json;

static json plan_json(const ask_result & r) {
    if (!r.has_plan) {
        return nullptr;
    }
    json tasks = json::array();
    for (const auto & t : r.plan_used.tasks) {
        tasks.push_back({ { "id", t.id }, { "goal", t.goal }, { "role", t.role }, { "depends_on", t.depends_on },
                          { "tools", t.tools } });
    }
    json j = { { "tasks", tasks }, { "fallback", r.plan_used.fallback }, { "summary", plan_summary(r.plan_used) } };
    if (!r.plan_used.rejected.empty()) {
        j["rejected"] = r.plan_used.rejected;
    }
    return j;
}

json to_json(const ask_result & r) {
    json agents = json::array();
    for (const auto & a : r.agents) {
        json calls = json::array();
        for (const auto & c : a.tool_calls) {
            calls.push_back({ { "name", c.name }, { "arguments", c.arguments }, { "result", c.result }, { "ok", c.ok } });
        }
        json j = {
            { "index", a.index },
            { "kind", agent_kind_name(a.kind) },
            { "role", a.role },
            { "reasoning", a.reasoning },
            { "answer", a.answer },
            { "tokens", a.tokens },
            { "prompt_tokens_prefilled", a.prompt_tokens_prefilled },
            { "prompt_tokens_reused", a.prompt_tokens_reused },
            { "pruned", a.pruned },
            { "tokens_saved", a.tokens_saved },
            { "confidence", a.confidence },
            { "weakest_logprob", a.weakest_logprob },
            { "temperature", a.temperature },
            { "seed", a.seed },
            { "tool_calls", calls },
            { "finish_reason", finish_reason_name(a.finish) },
            { "start_ms", a.start_ms },
            { "end_ms", a.end_ms },
        };
        if (!a.task_id.empty()) {
            j["task_id"] = a.task_id;
        }
        if (a.err) {
            j["error"] = { { "code", error_code_name(a.err.code) }, { "message", a.err.message } };
        }
        agents.push_back(j);
    }
    json vote = nullptr;
    if (r.aggregation == "vote") {
        json tally = json::array();
        for (const auto & e : r.vote.tally) {
            tally.push_back({ { "answer", e.display }, { "normalized", e.normalized }, { "votes", e.votes },
                              { "weight", e.weight }, { "agents", e.agents } });
        }
        vote = { { "winner", r.vote.display }, { "votes", r.vote.votes }, { "voters", r.vote.voters },
                 { "agreement", r.vote.agreement }, { "rule", r.vote.weighted ? "weighted" : "majority" },
                 { "weight", r.vote.weight }, { "tie", r.vote.tie }, { "tally", tally } };
        if (r.vote.tie) {
            vote["tie_break"] = r.vote.tie_break;
        }
    }
    json timings = json::array();
    for (const auto & t : r.timings) {
        timings.push_back({ { "step", t.step }, { "start_ms", t.start_ms }, { "end_ms", t.end_ms } });
    }
    json j = {
        { "content", r.answer },
        { "reasoning_content", r.reasoning },
        { "mode", ask_mode_name(r.mode) },
        { "mode_requested", ask_mode_name(r.mode_requested) },
        { "mode_reason", r.mode_reason },
        { "finish_reason", finish_reason_name(r.finish) },
        { "plan", plan_json(r) },
        { "agents", agents },
        { "aggregation", r.aggregation },
        { "vote", vote },
        { "synthesis", r.aggregation.rfind("synthesis", 0) == 0 ? json(r.answer) : json(nullptr) },
        { "confidence", r.confidence },
        { "usage", { { "shared_prefix_tokens", r.use.shared_prefix_tokens },
                     { "prompt_tokens_prefilled", r.use.prompt_tokens_prefilled },
                     { "prompt_tokens_reused", r.use.prompt_tokens_reused },
                     { "completion_tokens", r.use.completion_tokens },
                     { "planner_tokens", r.use.planner_tokens },
                     { "tokens_saved_by_pruning", r.use.tokens_saved_by_pruning } } },
        { "timings", timings },
        { "total_ms", r.total_ms },
    };
    if (!r.tool_calls.empty()) {
        json calls = json::array();
        for (const auto & c : r.tool_calls) {
            calls.push_back({ { "id", c.id }, { "name", c.name }, { "arguments", c.arguments } });
        }
        j["tool_calls"] = calls;
    }
    if (r.err) {
        j["error"] = { { "code", error_code_name(r.err.code) }, { "message", r.err.message } };
    }
    if (!r.safety_json.empty()) {
        json s = json::parse(r.safety_json, nullptr, false);
        if (!s.is_discarded()) j["safety"] = s;
    }
    return j;
}

}  // namespace muse
