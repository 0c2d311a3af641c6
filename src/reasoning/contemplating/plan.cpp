// Contemplating's first steps: the conversation prefilled once, then the planner's JSON plan,
// which grows the graph by the plan's sub-tasks and the solver phase.

#include "contemplating.h"

#include "prompts.h"

namespace muse::contemplating {

static void run_prefix(contemplation & c, step_graph & g) {
    error   err;
    int32_t n_prefix = 0;
    c.prefix_a       = start_prefix(c.ctx, base_request(c.ctx, REASONING_ON, c.strength), n_prefix, err);
    if (err) {
        std::lock_guard<std::mutex> lk(c.ctx.mu);
        c.ctx.result.err    = err;
        c.ctx.result.finish = FINISH_ERROR;
        g.halt();
    }
}

static void run_plan(const state & st, step_graph & g, int self) {
    contemplation & c = *st;
    plan_limits     limits;
    limits.max_tasks = c.opt.max_plan_tasks;
    limits.tools     = c.opt.tools;
    agent_call spec;
    spec.kind                         = AGENT_PLANNER;
    spec.role                         = "planner";
    spec.request                      = base_request(c.ctx, REASONING_OFF, c.strength);
    spec.request.messages             = with_suffix(c.ctx.req.messages, planner_suffix(c.opt.max_plan_tasks));
    spec.request.json_schema          = plan_json_schema(limits);
    spec.request.tool_choice          = "none";
    // planner_budget bounds everything the planner generates: max_tokens counts reasoning and
    // plan tokens alike, and the agent's steps share it; a template that cannot turn reasoning
    // off closes it at once, leaving the budget to the plan.
    spec.request.max_tokens           = c.opt.plan_tokens;
    spec.request.reasoning_budget     = 0;
    spec.request.sampling.temperature = 0.2f;
    spec.request.fork_from            = c.prefix_a->id();
    const ask_agent_trace t           = c.ctx.trace(c.ctx.run_agent(spec));
    std::string           why;
    if (t.err) {
        c.p = fallback_plan(c.request, "the planner failed: " + t.err.message);
    } else if (!parse_plan(t.answer, limits, c.p, why)) {
        if (t.finish == FINISH_LENGTH) {
            why = "the plan did not fit planner_budget (" + std::to_string(c.opt.plan_tokens) + " tokens): " + why;
        }
        c.p = fallback_plan(c.request, why);
    }
    {
        std::lock_guard<std::mutex> lk(c.ctx.mu);
        c.ctx.result.has_plan  = true;
        c.ctx.result.plan_used = c.p;
    }
    ask_event ev;
    ev.type = ask_event::PLAN;
    ev.text = plan_to_json(c.p);
    c.ctx.emit(ev);

    // The graph grows: sub-tasks when the plan has several, then the solvers.
    std::vector<int> after = { self };
    if (c.p.tasks.size() > 1) {
        after = add_subtasks(st, g, self);
    }
    add_after_plan(st, g, after);
}

int add_prefix_and_plan(const state & st, step_graph & g, int after) {
    const int prefix = g.add("prefix", after >= 0 ? std::vector<int>{ after } : std::vector<int>{},
                             [st](step_graph & g, int) { run_prefix(*st, g); });
    return g.add("plan", { prefix }, [st](step_graph & g, int self) { run_plan(st, g, self); });
}

void add_after_plan(const state & st, step_graph & g, const std::vector<int> & after) {
    int              last             = add_solvers(st, g, after);
    std::vector<int> before_aggregate = { last };
    if (st->opt.refine) {
        before_aggregate = add_refiners(st, g, last);
    }
    if (st->opt.verify) {
        before_aggregate = add_verifiers(st, g, before_aggregate);
    }
    add_aggregate(st, g, before_aggregate);
}

}  // namespace muse::contemplating
