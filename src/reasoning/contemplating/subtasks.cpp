// The plan's sub-tasks: one step each, run as soon as the tasks they build on are done, so
// independent ones run together. Each forks the conversation's prefix.

#include "contemplating.h"

#include "prompts.h"

#include <algorithm>

namespace muse::contemplating {

static agent_call subtask_call(contemplation & c, size_t i) {
    const plan_task & task = c.p.tasks[i];
    agent_call        spec;
    spec.kind    = AGENT_SUBTASK;
    spec.role    = task.role;
    spec.task_id = task.id;
    spec.request = base_request(c.ctx, REASONING_ON, c.strength);
    {
        std::lock_guard<std::mutex> lk(c.mu);
        spec.request.messages = with_suffix(c.ctx.req.messages, subtask_suffix(task, c.results));
    }
    spec.request.reasoning_budget = std::max(0, c.opt.budget / 2);
    spec.request.max_tokens       = spec.request.reasoning_budget + c.opt.answer_tokens / 2 + 1;
    spec.request.fork_from        = c.prefix_a->id();
    spec.request.logprobs         = true;
    spec.request.sampling.seed    = c.opt.sampling.seed + 7919u * (uint32_t)(i + 1);
    for (const auto & tool : task.tools) {
        if (std::find(c.opt.tools.begin(), c.opt.tools.end(), tool) != c.opt.tools.end()) {
            spec.allowed_tools.push_back(tool);
        }
    }
    spec.max_tool_steps = c.opt.max_tool_steps;
    return spec;
}

std::vector<int> add_subtasks(const state & st, step_graph & g, int after) {
    const plan &     p = st->p;
    std::vector<int> step_of(p.tasks.size(), -1);
    std::vector<int> ids;
    // A parsed plan has no cycle: every task is in the order, after the tasks it builds on.
    for (size_t i : plan_topological_order(p)) {
        std::vector<int> deps = { after };
        for (const auto & d : p.tasks[i].depends_on) {
            for (size_t j = 0; j < p.tasks.size(); ++j) {
                if (p.tasks[j].id == d && step_of[j] >= 0) {
                    deps.push_back(step_of[j]);
                }
            }
        }
        // The slot is reserved when the step starts, in plan order among the tasks that become
        // ready together, so that the agents' order does not depend on thread timing.
        auto slot  = std::make_shared<int>(-1);
        step_of[i] = g.add(
            "subtasks", deps,
            [st, i, slot](step_graph &, int) {
                contemplation & c             = *st;
                agent_call      spec          = subtask_call(c, i);
                spec.index                    = *slot;
                const ask_agent_trace       t = c.ctx.trace(c.ctx.run_agent(spec));
                std::lock_guard<std::mutex> lk(c.mu);
                c.results[c.p.tasks[i].id] = t.err ? "(this sub-task failed: " + t.err.message + ")" : t.answer;
            },
            [st, i, slot] {
                const plan_task & task = st->p.tasks[i];
                *slot                  = st->ctx.add_agent(AGENT_SUBTASK, task.role, task.id);
            });
        ids.push_back(step_of[i]);
    }
    return ids;
}

}  // namespace muse::contemplating
