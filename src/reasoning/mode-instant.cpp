// Instant: reasoning off through the family's own mechanism (Qwen3: thinking disabled in the
// template; Muse Glimmer: strength low and the answer channel opened in the prompt), one
// direct answer. Tools stay available.

#include "modes.h"

namespace muse {

void run_instant(ask_context & ctx) {
    agent_spec spec;
    spec.kind                   = AGENT_ANSWER;
    spec.role                   = "instant";
    spec.request                = base_request(ctx, REASONING_OFF, "low");
    spec.request.max_tokens     = ctx.opt.answer_tokens;
    spec.request.stop             = ctx.opt.stop;
    spec.request.json_schema      = ctx.opt.json_schema;
    spec.request.logprobs       = true;
    spec.allowed_tools          = ctx.opt.tools;
    spec.max_tool_steps         = ctx.opt.max_tool_steps;
    ctx.begin_step("answer");
    const int idx = run_agent(ctx, spec);
    ctx.end_step("answer");
    finish_single(ctx, idx);
}

}  // namespace muse
