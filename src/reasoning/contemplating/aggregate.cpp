// Aggregation: a vote when the answers are extractable (self-consistency), else a synthesis of
// them (mixture of agents); when no agent answered, a synthesis of their unfinished reasoning.

#include "contemplating.h"

#include "prompts.h"

#include "core/utf8.h"

#include <algorithm>
#include <cmath>

namespace muse::contemplating {

std::vector<ballot> collect_ballots(contemplation & c, std::vector<ask_agent_trace> * answered,
                                    std::vector<ask_agent_trace> * pruned) {
    std::vector<int> final_idx;
    {
        std::lock_guard<std::mutex> lk(c.mu);
        final_idx = c.final_idx;
    }
    std::vector<ballot> ballots;
    for (int idx : final_idx) {
        ask_agent_trace t = c.ctx.trace(idx);
        if (t.pruned) {
            if (pruned) pruned->push_back(t);
            continue;
        }
        if (t.err || t.answer.empty()) {
            continue;
        }
        ballot b;
        b.agent      = t.index;
        b.answer     = extract_answer(t.answer);
        b.confidence = t.confidence;
        b.has_weight = t.scored_tokens > 0;
        b.log_weight = t.weakest_logprob;
        if (b.answer.kind != ANSWER_NONE) {
            ballots.push_back(b);
        }
        if (answered) answered->push_back(std::move(t));
    }
    return ballots;
}

static void aggregate(contemplation & c) {
    ask_context &       ctx      = c.ctx;
    const ask_options & opt      = c.opt;
    const char *        strength = c.strength;
    std::vector<int>    final_idx;
    {
        std::lock_guard<std::mutex> lk(c.mu);
        final_idx = c.final_idx;
    }
    auto trace = [&](int idx) { return ctx.trace(idx); };

    std::vector<ask_agent_trace> answered, pruned;
    std::map<int, int>           agent_no;  // trace index -> N in "Agent N, <role>:"
    for (size_t i = 0; i < final_idx.size(); ++i) {
        agent_no[final_idx[i]] = (int) i + 1;
    }
    const std::vector<ballot> ballots = collect_ballots(c, &answered, &pruned);

    // The synthesiser reads the candidates and writes one answer, with reasoning off: the
    // solvers did the reasoning, and it runs alone after them, on the request's critical path
    // (one sequence decoding, every token adding a step to the latency).
    auto synthesize = [&](const std::vector<ask_agent_trace> & from, bool partial) {
        std::string cands;
        for (const auto & t : from) {
            std::string text = partial ? t.reasoning : t.answer;
            if (text.size() > 1500) {
                text = "..." + utf8_tail(text, 1500);  // the end holds the conclusion
            }
            cands += "[" + std::to_string(agent_no[t.index]) + "] " + text + "\n";
        }
        agent_call spec;
        spec.kind    = AGENT_SYNTHESIZER;
        spec.role    = "synthesizer";
        spec.request = base_request(ctx, REASONING_OFF, strength);
        // Every token here is prefilled after the solvers, so the candidates are marked by their
        // agent numbers only.
        spec.request.messages =
            with_suffix(ctx.req.messages, join_suffix(c.shared_suffix, synthesis_suffix(partial, cands)));
        spec.request.max_tokens    = opt.answer_tokens;
        spec.request.fork_from     = c.solver_parent;
        spec.request.logprobs      = true;
        spec.request.sampling.seed = opt.sampling.seed + 31u;
        return ctx.run_agent(spec);
    };

    std::string   method, answer, reasoning, summary;
    vote_result   vr;
    double        confidence = 0;
    error         final_err;
    finish_reason finish = FINISH_STOP;
    // A synthesiser's answer is the request's answer.
    auto take = [&](int idx) {
        const ask_agent_trace t = trace(idx);
        answer                  = t.answer;
        reasoning               = t.reasoning;
        final_err               = t.err;
        finish                  = t.finish == FINISH_LENGTH ? FINISH_LENGTH : FINISH_STOP;
    };
    // A vote needs extractable answers from at least half of the agents and two that agree;
    // answers that all differ are better merged by a synthesiser.
    if (answered.size() >= 2 && ballots.size() >= 2 && ballots.size() * 2 >= answered.size()) {
        vr = majority_vote(ballots, opt.vote);
    }
    // Two agents agreeing on some answer make it a vote (a weighted winner may stand alone).
    int most_votes = 0;
    for (const auto & e : vr.tally) {
        most_votes = std::max(most_votes, e.votes);
    }
    // Verification (verify.cpp): the most-voted answer a verifier found right stands, whether
    // or not the vote chose it; without such an answer the vote stands.
    const vote_tally_entry * verified = nullptr;
    std::string              verify_note;
    {
        std::vector<vote_tally_entry> checked;
        std::vector<int>              verify_idx;
        {
            std::lock_guard<std::mutex> lk(c.mu);
            checked    = c.checked;
            verify_idx = c.verify_idx;
        }
        std::string right, wrong, unsure;
        for (size_t i = 0; i < checked.size() && i < verify_idx.size(); ++i) {
            if (verify_idx[i] < 0) continue;
            const int v = parse_verdict(trace(verify_idx[i]).answer);
            std::string & to = v == 1 ? right : v == 0 ? wrong : unsure;
            to += (to.empty() ? "" : ", ") + checked[i].display;
            if (v == 1 && verified == nullptr) {
                for (const auto & e : vr.tally) {
                    if (e.normalized == checked[i].normalized) verified = &e;
                }
            }
        }
        if (!right.empty() || !wrong.empty() || !unsure.empty()) {
            verify_note = "; checked" + (right.empty() ? "" : " right: " + right) +
                          (wrong.empty() ? "" : std::string(right.empty() ? "" : ";") + " wrong: " + wrong) +
                          (unsure.empty() ? "" : std::string(right.empty() && wrong.empty() ? "" : ";") + " no verdict: " + unsure);
        }
    }
    const bool vote_stands = vr.decided && most_votes >= 2;
    if (answered.empty() && !pruned.empty()) {
        // Every branch was pruned: their unfinished reasoning is all there is. Confidence 0:
        // no branch finished with enough confidence.
        take(synthesize(pruned, true));
        method = "synthesis_all_pruned";
        summary =
            "all " + std::to_string(pruned.size()) + " agents were pruned; synthesised from their partial reasoning";
    } else if (answered.empty()) {
        // No answer. An agent's error is the request's error; otherwise the agents ran out of
        // tokens (max_tokens, a small budget) before answering, which is a result, not a
        // failure: what they reasoned is synthesised, or the answer is empty with "length".
        std::vector<ask_agent_trace> unfinished;
        bool                         cancelled = false;
        for (int idx : final_idx) {
            const ask_agent_trace t = trace(idx);
            if (t.err && !final_err) {
                final_err = t.err;
            }
            cancelled = cancelled || t.finish == FINISH_CANCELLED;
            if (!t.reasoning.empty()) {
                unfinished.push_back(t);
            }
        }
        method = "none";
        if (final_err) {
            summary = final_err.message;
        } else if (!unfinished.empty() && !cancelled) {
            take(synthesize(unfinished, true));
            method  = "synthesis_unfinished";
            summary = "no agent answered within its tokens; synthesised from their reasoning";
        } else {
            finish  = FINISH_LENGTH;
            summary = "no agent wrote an answer within its token limits";
        }
    } else if (answered.size() == 1) {
        method     = "single";
        answer     = answered[0].answer;
        reasoning  = answered[0].reasoning;
        confidence = std::exp(answered[0].confidence);
        summary    = "one agent answered";
    } else if (verified != nullptr && !(vote_stands && verified->normalized == vr.normalized)) {
        method     = "verified";
        answer     = verified->display;
        confidence = verified->weight;
        for (const auto & t : answered) {
            if (t.index == verified->agents[0]) {  // its first agent speaks for it
                reasoning = t.reasoning;
            }
        }
        summary = "verified: " + verified->display + " (" + std::to_string(verified->votes) + " of " +
                  std::to_string(answered.size()) + " agents" +
                  (vote_stands ? ", over the vote's " + vr.display : "") + ")" + verify_note;
    } else if (vote_stands) {
        method     = "vote";
        confidence = vr.weighted ? vr.weight : (double) vr.votes / (double) answered.size();
        answer     = vr.display;
        for (const auto & t : answered) {
            if (t.index == vr.tally[0].agents[0]) {  // the winner's first agent speaks for it
                reasoning = t.reasoning;
            }
        }
        summary = "vote: " + vr.display + " with " + std::to_string(vr.votes) + " of " +
                  std::to_string(answered.size()) + " agents" +
                  (vr.weighted ? ", " + std::to_string((int) std::lround(100 * vr.weight)) + "% of the weight" : "") +
                  (vr.tie ? " (tie broken by " + vr.tie_break + ")" : "") + verify_note;
    } else {
        take(synthesize(answered, false));
        method = "synthesis";
        for (const auto & a : answered) {
            confidence += std::exp(a.confidence) / (double)answered.size();
        }
        summary = "synthesis of " + std::to_string(answered.size()) + " answers";
        if (final_err && final_err.code != ERROR_ENGINE_STOPPED && !ctx.cancelled()) {
            // The synthesiser failed (a remote server refused its output, say) after the
            // solvers answered: their most confident answer stands rather than no answer.
            const ask_agent_trace * best = &answered[0];
            for (const auto & a : answered) {
                if (a.confidence > best->confidence) best = &a;
            }
            summary    = "the synthesiser failed (" + final_err.message + "); the most confident of " +
                         std::to_string(answered.size()) + " answers stands";
            method     = "best_after_synthesis_failed";
            answer     = best->answer;
            reasoning  = best->reasoning;
            confidence = std::exp(best->confidence);
            finish     = FINISH_STOP;
            final_err  = {};
        }
    }
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        ask_result &                res = ctx.result;
        res.aggregation                 = method;
        res.answer                      = answer;
        res.reasoning                   = reasoning;
        res.vote                        = vr;
        res.confidence                  = confidence;
        res.err                         = final_err;
        res.finish                      = final_err ? FINISH_ERROR : finish;
    }
    ask_event ev;
    ev.type   = ask_event::AGGREGATE;
    ev.text   = summary;
    ev.detail = method;
    ctx.emit(ev);
}

int add_aggregate(const state & st, step_graph & g, const std::vector<int> & after) {
    return g.add("aggregate", after, [st](step_graph &, int) { aggregate(*st); });
}

}  // namespace muse::contemplating
