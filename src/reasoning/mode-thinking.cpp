// Thinking: one agent reasons within its budget (budget forcing closes the reasoning in the
// model's own syntax when it is spent), may call tools, then answers.

#include "modes.h"

namespace muse {

void run_thinking(ask_context & ctx) {
    agent_spec spec;
    spec.kind                     = AGENT_ANSWER;
    spec.role                     = "thinking";
    spec.request                  = base_request(ctx, REASONING_ON, "medium");
    spec.request.reasoning_budget = ctx.opt.budget;
    spec.request.max_tokens       = ctx.opt.budget + ctx.opt.answer_tokens;
    spec.request.stop             = ctx.opt.stop;
    spec.request.json_schema      = ctx.opt.json_schema;
    spec.request.logprobs         = true;
    spec.allowed_tools            = ctx.opt.tools;
    spec.max_tool_steps           = ctx.opt.max_tool_steps;
    ctx.begin_step("reason+answer");
    const int idx = run_agent(ctx, spec);
    ctx.end_step("reason+answer");
    finish_single(ctx, idx);
}

}  // namespace muse
