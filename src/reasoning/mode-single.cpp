// Instant and thinking: one agent answers, with tools; one step.
//
//   instant   reasoning off through the family's own mechanism (Qwen3: thinking disabled in
//             the template; Muse Glimmer: strength low and the answer channel opened in the
//             prompt)
//   thinking  reasoning on within the budget (budget forcing closes it in the model's own
//             syntax when it is spent), then the answer

#include "modes.h"

#include <cmath>

namespace muse {

namespace {

void run_single(ask_context & ctx, const char * role, reasoning_mode reasoning, const char * strength, int32_t budget) {
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
    const int idx                 = ctx.run_agent(spec);

    std::lock_guard<std::mutex> lk(ctx.mu);
    ask_result &                res = ctx.result;
    const ask_agent_trace &     t   = res.agents[idx];
    res.answer                      = t.answer;
    res.reasoning                   = t.reasoning;
    res.aggregation                 = "single";
    res.confidence                  = t.tokens > 0 ? std::exp(t.confidence) : 0;
    res.finish                      = t.finish;
    res.err                         = t.err;
    res.tool_calls                  = t.client_calls;
}

std::vector<int> after_list(int after) {
    return after >= 0 ? std::vector<int>{ after } : std::vector<int>{};
}

class instant_mode_t : public mode {
  public:
    ask_mode     id() const override { return MODE_INSTANT; }
    const char * name() const override { return "instant"; }
    const char * purpose() const override { return "a direct reply"; }
    mode_traits  traits() const override {
        mode_traits t;
        t.allows_client_tools = true;
        t.allows_json_schema  = true;
        t.allows_n            = true;
        return t;
    }
    void build(ask_context & ctx, step_graph & g, int after) const override {
        g.add("instant", after_list(after),
              [&ctx](step_graph &, int) { run_single(ctx, "instant", REASONING_OFF, "low", -1); });
    }
};

class thinking_mode_t : public mode {
  public:
    ask_mode     id() const override { return MODE_THINKING; }
    const char * name() const override { return "thinking"; }
    const char * purpose() const override { return "careful step-by-step reasoning"; }
    mode_traits  traits() const override {
        mode_traits t;
        t.reasons             = true;
        t.allows_client_tools = true;
        t.allows_json_schema  = true;
        t.allows_n            = true;
        t.builtin_tools       = true;
        return t;
    }
    void build(ask_context & ctx, step_graph & g, int after) const override {
        g.add("thinking", after_list(after),
              [&ctx](step_graph &, int) { run_single(ctx, "thinking", REASONING_ON, "medium", ctx.opt.budget); });
    }
};

}  // namespace

const mode & instant_mode() {
    static const instant_mode_t m;
    return m;
}

const mode & thinking_mode() {
    static const thinking_mode_t m;
    return m;
}

}  // namespace muse
