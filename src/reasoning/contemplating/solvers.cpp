// The solvers: their shared prefix (the sub-task results and the answer format) prefilled once,
// and K solver agents forked from it, in parallel. The solvers are submitted while the prefix
// is still being prefilled: the backend holds them and forks all of them in the step after it,
// so they start together and advance in the same decode calls.

#include "contemplating.h"

#include "prompts.h"

namespace muse::contemplating {

agent_call solver_call(const contemplation & c, int i, agent_kind kind, const std::string & extra) {
    const ask_options & opt = c.opt;
    agent_call          spec;
    spec.kind    = kind;
    spec.role    = solver_role(i);
    spec.request = base_request(c.ctx, REASONING_ON, c.strength);
    if (extra.empty()) {
        // The prompt is the shared prefix itself; the agent's role opens its own reasoning,
        // so it computes a dozen tokens of its own and nothing of the shared prompt.
        spec.request.messages         = with_suffix(c.ctx.req.messages, c.shared_suffix);
        spec.request.assistant_prefix = solver_opening(i);
    } else {
        spec.request.messages =
            with_suffix(c.ctx.req.messages, join_suffix(c.shared_suffix, solver_intro(i, opt.agents, extra)));
    }
    spec.request.reasoning_budget     = opt.budget;
    spec.request.max_tokens           = opt.budget + opt.answer_tokens;
    spec.request.sampling.temperature = solver_temperature(opt.sampling.temperature, i);
    spec.request.sampling.seed        = opt.sampling.seed + 1000003u * (uint32_t)(i + 1);
    spec.request.fork_from            = c.solver_parent;
    spec.request.logprobs             = true;
    spec.allowed_tools                = opt.tools;
    spec.max_tool_steps               = opt.max_tool_steps;
    return spec;
}

int add_solvers(const state & st, step_graph & g, const std::vector<int> & after) {
    const int K = st->opt.agents;
    st->solver_idx.assign(K, -1);

    // The shared prefix, submitted (its prefill runs while the solvers are submitted).
    const int submit = g.add("shared prefix", after, [st](step_graph &, int) {
        contemplation & c = *st;
        {
            std::lock_guard<std::mutex> lk(c.mu);
            c.shared_suffix = solver_shared_suffix(c.p, c.results);
        }
        chat_request rb = base_request(c.ctx, REASONING_ON, c.strength);
        rb.messages     = with_suffix(c.ctx.req.messages, c.shared_suffix);
        rb.fork_from    = c.prefix_a ? c.prefix_a->id() : 0;
        c.prefix_b      = submit_prefix(c.ctx, rb);
        c.solver_parent = c.prefix_b->id();
    });

    // K solvers, their slots reserved in role order as they start.
    std::vector<int> ends;
    for (int i = 0; i < K; ++i) {
        ends.push_back(g.add(
            "solvers", { submit },
            [st, i](step_graph &, int) {
                agent_call spec = solver_call(*st, i, AGENT_SOLVER, "");
                spec.prune      = st->opt.prune;
                spec.index      = st->solver_idx[i];
                st->ctx.run_agent(spec);
            },
            [st, i] { st->solver_idx[i] = st->ctx.add_agent(AGENT_SOLVER, solver_role(i), ""); }));
    }

    // The prefix awaited beside the solvers (the step after its submit, so they go first).
    ends.push_back(g.add("shared prefix", { submit }, [st](step_graph &, int) {
        int32_t n = 0;
        await_prefix(st->ctx, *st->prefix_b, n, st->prefix_err);
    }));

    // After them: a failed prefix fails the request (the solvers failed with it; its error says why).
    return g.add("", ends, [st](step_graph & g, int) {
        contemplation & c = *st;
        if (c.prefix_err) {
            std::lock_guard<std::mutex> lk(c.ctx.mu);
            c.ctx.result.err    = c.prefix_err;
            c.ctx.result.finish = FINISH_ERROR;
            g.halt();
            return;
        }
        for (int idx : c.solver_idx) {
            c.solved.push_back(c.ctx.trace(idx));
        }
        c.final_idx = c.solver_idx;
    });
}

}  // namespace muse::contemplating
