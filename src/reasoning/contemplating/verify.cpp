// Verification (opt.verify): when the solvers' answers disagree, one verifier per answer (the
// most-voted first, at most k_max_checked) checks it, reasoning greedily, and ends with a
// verdict; aggregate.cpp prefers an answer found right. A vote only counts how often an answer
// came out, so a slip most agents share wins it; a check that works the problem another way
// (a sum checked by subtracting) slips elsewhere.

#include "contemplating.h"

#include "prompts.h"

namespace muse::contemplating {

namespace {

constexpr int k_max_checked = 3;

}  // namespace

std::vector<int> add_verifiers(const state & st, step_graph & g, const std::vector<int> & after) {
    // Which answers to check: none when aggregation will not vote (fewer than two extractable
    // answers, or fewer than from half of the agents that answered: a synthesiser merges them
    // instead) or when all agree.
    const int pick = g.add("verify", after, [st](step_graph &, int) {
        contemplation &              c = *st;
        std::vector<ask_agent_trace> answered;
        const std::vector<ballot>    ballots = collect_ballots(c, &answered, nullptr);
        if (ballots.size() < 2 || ballots.size() * 2 < answered.size()) {
            return;
        }
        const vote_result           vr = majority_vote(ballots, c.opt.vote);
        std::lock_guard<std::mutex> lk(c.mu);
        if (vr.tally.size() < 2) {
            return;
        }
        for (size_t i = 0; i < vr.tally.size() && (int) i < k_max_checked; ++i) {
            c.checked.push_back(vr.tally[i]);
        }
        c.verify_idx.assign(c.checked.size(), -1);
    });

    std::vector<int> ids;
    for (int i = 0; i < k_max_checked; ++i) {
        auto slot = std::make_shared<int>(-1);
        ids.push_back(g.add(
            "verify", { pick },
            [st, i, slot](step_graph &, int) {
                if (*slot < 0) {
                    return;
                }
                contemplation & c = *st;
                agent_call      spec;
                spec.kind    = AGENT_VERIFIER;
                spec.role    = "verifier";
                spec.request = base_request(c.ctx, REASONING_ON, c.strength);
                spec.request.messages =
                    with_suffix(c.ctx.req.messages, verifier_suffix(c.checked[(size_t) i].display));
                spec.request.reasoning_budget     = c.opt.budget;
                spec.request.max_tokens           = c.opt.budget + c.opt.answer_tokens;
                spec.request.sampling.temperature = 0;  // a verdict, not an exploration
                spec.request.logprobs             = true;
                spec.allowed_tools                = c.opt.tools;
                spec.max_tool_steps               = c.opt.max_tool_steps;
                spec.index                        = *slot;
                const int                   idx   = c.ctx.run_agent(spec);
                std::lock_guard<std::mutex> lk(c.mu);
                c.verify_idx[(size_t) i] = idx;
            },
            [st, i, slot] {
                if (i < (int) st->checked.size()) {
                    *slot = st->ctx.add_agent(AGENT_VERIFIER, "verifier", "");
                }
            }));
    }
    return ids;
}

}  // namespace muse::contemplating
