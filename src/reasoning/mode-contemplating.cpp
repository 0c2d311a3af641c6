// Contemplating: plan -> sub-tasks in parallel -> K solvers forked from the shared prefix ->
// early pruning -> vote or synthesis [-> refinement]. Its steps live in contemplating/, one
// file each (plan, subtasks, solvers, refine, aggregate, prompts); this file builds the graph.

#include "contemplating/contemplating.h"

namespace muse {

namespace {

// Below this trained context the planner is skipped (see build()).
constexpr int32_t k_planner_min_ctx_train = 1024;

class contemplating_mode_t : public mode {
  public:
    ask_mode     id() const override { return MODE_CONTEMPLATING; }
    const char * name() const override { return "contemplating"; }
    const char * purpose() const override { return "a hard, multi-part problem worth several independent solvers"; }
    mode_traits  traits() const override {
        mode_traits t;
        t.reasons       = true;
        t.needs_fork    = true;
        t.builtin_tools = true;
        return t;
    }

    void build(ask_context & ctx, step_graph & g, int after) const override {
        auto          st        = std::make_shared<contemplating::contemplation>(ctx);
        const int32_t n_train   = ctx.be.caps().n_ctx_train;
        const bool    too_short = n_train > 0 && n_train < k_planner_min_ctx_train;
        if (ctx.opt.planner && !too_short) {
            add_prefix_and_plan(st, g, after);  // the plan step adds the rest
            return;
        }
        // Without a planner the solvers' shared prefix is the only one.
        st->p          = fallback_plan(st->request, "");
        st->p.fallback = false;
        if (ctx.opt.planner) {
            // A model trained on short contexts never saw anything like the planner's
            // instructions (about 300 tokens) and cannot hold them with a plan: one task.
            st->p.rejected = "planner skipped: the model was trained on " + std::to_string(n_train) +
                             " tokens of context, fewer than the " + std::to_string(k_planner_min_ctx_train) +
                             " its instructions and a plan need";
            std::lock_guard<std::mutex> lk(ctx.mu);
            ctx.result.has_plan  = true;
            ctx.result.plan_used = st->p;
        }
        add_after_plan(st, g, after >= 0 ? std::vector<int>{ after } : std::vector<int>{});
    }
};

}  // namespace

const mode & contemplating_mode() {
    static const contemplating_mode_t m;
    return m;
}

}  // namespace muse
