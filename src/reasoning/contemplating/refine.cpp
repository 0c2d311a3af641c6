// Optional refinement: one debate round where each answering solver sees the others' answers
// and may revise its own. One step per solver; a solver that did not answer has no refiner.

#include "contemplating.h"

#include "prompts.h"

#include <algorithm>

namespace muse::contemplating {

static bool answered(const ask_agent_trace & t) {
    return !(t.pruned || t.err || t.answer.empty());
}

std::vector<int> add_refiners(const state & st, step_graph & g, int after) {
    std::vector<int> ids;
    for (int i = 0; i < st->opt.agents; ++i) {
        auto slot = std::make_shared<int>(-1);
        ids.push_back(g.add(
            "refine", { after },
            [st, i, slot](step_graph &, int) {
                contemplation & c  = *st;
                const auto &    ts = c.solved;
                if (*slot < 0) {
                    return;
                }
                std::string others;
                for (int j = 0; j < (int)ts.size(); ++j) {
                    if (j != i && answered(ts[j])) {
                        others += "<answer agent=\"" + std::to_string(j + 1) + "\">\n" + ts[j].answer + "\n</answer>\n";
                    }
                }
                agent_call spec                 = solver_call(c, i, AGENT_REFINER, refine_extra(ts[i].answer, others));
                spec.request.reasoning_budget   = std::max(0, c.opt.budget / 2);
                spec.request.max_tokens         = spec.request.reasoning_budget + c.opt.answer_tokens;
                spec.index                      = *slot;
                const int                   idx = c.ctx.run_agent(spec);
                std::lock_guard<std::mutex> lk(c.mu);
                c.final_idx[i] = idx;
            },
            [st, i, slot] {
                if (answered(st->solved[i])) {
                    *slot = st->ctx.add_agent(AGENT_REFINER, solver_role(i), "");
                }
            }));
    }
    return ids;
}

}  // namespace muse::contemplating
