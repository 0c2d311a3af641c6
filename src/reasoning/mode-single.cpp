// Instant and thinking: one agent answers, with tools.
//
//   instant   reasoning off through the family's own mechanism (Qwen3: thinking disabled in
//             the template; Muse Glimmer: strength low and the answer channel opened in the
//             prompt)
//   thinking  reasoning on within the budget (budget forcing closes it in the model's own
//             syntax when it is spent), then the answer

#include "modes.h"

#include <cmath>

namespace muse {

static void run_single(ask_context & ctx, const char * role, reasoning_mode reasoning, const char * strength,
                       int32_t budget) {
    agent_call spec;
    spec.kind                     = AGENT_ANSWER;
    spec.role                     = role;
    spec.request                  = base_request(ctx, reasoning, strength);
    spec.request.reasoning_budget = budget;
    spec.request.max_tokens       = std::max(budget, 0) + ctx.opt.answer_tokens;
    spec.request.stop             = ctx.opt.stop;
    spec.request.json_schema      = ctx.opt.json_schema;
    spec.request.logprobs         = true;
    spec.allowed_tools            = ctx.opt.tools;
    spec.max_tool_steps           = ctx.opt.max_tool_steps;
    spec.client_tools             = !ctx.opt.client_tools.empty();
    ctx.begin_step(role);
    const int idx = ctx.run_agent(spec);
    ctx.end_step(role);

    std::lock_guard<std::mutex> lk(ctx.mu);
    ask_result &        res = ctx.result;
    const ask_agent_trace & t   = res.agents[idx];
    res.answer      = t.answer;
    res.reasoning   = t.reasoning;
    res.aggregation = "single";
    res.confidence  = t.tokens > 0 ? std::exp(t.confidence) : 0;
    res.finish      = t.finish;
    res.err         = t.err;
    res.tool_calls  = t.client_calls;
}

void run_instant(ask_context & ctx) {
    run_single(ctx, "instant", REASONING_OFF, "low", -1);
}

void run_thinking(ask_context & ctx) {
    run_single(ctx, "thinking", REASONING_ON, "medium", ctx.opt.budget);
}

}  // namespace muse
