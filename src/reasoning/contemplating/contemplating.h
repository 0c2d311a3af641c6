#pragma once
// Contemplating as steps of the request's graph, one file each:
//
//   [prefix] → [plan] ─(adds)→ [sub-task ‖ ...] → [shared prefix] → [solver ‖ ... ‖ solver]
//                                                   (submitted, awaited beside the solvers)
//            → [check] → [refine ‖ ...] → [verify ‖ ...] → [aggregate]
//
// The plan step grows the graph once the plan is known (plan.cpp adds the sub-tasks and the
// solver phase). Without a planner the graph starts at the shared prefix. The solvers are
// submitted while their shared prefix is still being prefilled: the backend holds them and
// forks all of them in the step after it, so they start together and share one prefill.
//
// Thread safety: one `contemplation` per request, shared by its steps; what they write is
// guarded by mu, or written by a step that its readers depend on.

#include "reasoning/modes.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse::contemplating {

struct contemplation {
    explicit contemplation(ask_context & c) : ctx(c), opt(c.opt), request(request_text(c.req.messages)) {}

    ask_context &       ctx;
    const ask_options & opt;
    const std::string   request;
    const char *        strength = "high";

    // prefix and plan
    std::unique_ptr<chat_stream> prefix_a;  // the conversation, prefilled once for the planner and the sub-tasks
    plan                         p;

    // sub-tasks
    std::mutex                         mu;
    std::map<std::string, std::string> results;  // task id -> answer (under mu)

    // solvers
    std::string                  shared_suffix;
    std::unique_ptr<chat_stream> prefix_b;  // the solvers' shared prefix
    uint64_t                     solver_parent = 0;
    error                        prefix_err;  // the shared prefix failed (the solvers failed with it)
    std::vector<int>             solver_idx;  // trace index per solver
    std::vector<ask_agent_trace> solved;      // the solvers' traces, once they all ended
    std::vector<int>             final_idx;   // the answering agent per slot (a refiner, or the solver)

    // verifiers (opt.verify, when the answers disagree)
    std::vector<vote_tally_entry> checked;     // the answers checked, most votes first
    std::vector<int>              verify_idx;  // trace index per checked answer (-1: not run)
};

// The answering agents' ballots (final_idx's traces with an extractable answer); `answered`
// and `pruned` receive the traces that answered and that were pruned.
std::vector<ballot> collect_ballots(contemplation & c, std::vector<ask_agent_trace> * answered,
                                    std::vector<ask_agent_trace> * pruned);

using state = std::shared_ptr<contemplation>;

// The first steps; returns the step the rest of the graph grows from.
int add_prefix_and_plan(const state & st, step_graph & g, int after);  // plan.cpp
// One step per plan task, in dependency order; returns their ids.
std::vector<int> add_subtasks(const state & st, step_graph & g, int after);  // subtasks.cpp
// The shared prefix, the K solvers and the check after them; returns the check step.
int add_solvers(const state & st, step_graph & g, const std::vector<int> & after);  // solvers.cpp
// One refiner step per solver; returns their ids.
std::vector<int> add_refiners(const state & st, step_graph & g, int after);  // refine.cpp
// Up to 3 verifier steps (each idle unless its answer is to be checked); returns their ids.
std::vector<int> add_verifiers(const state & st, step_graph & g, const std::vector<int> & after);  // verify.cpp
// The vote or the synthesis.
int add_aggregate(const state & st, step_graph & g, const std::vector<int> & after);  // aggregate.cpp

// Everything after the plan (or from the start, without a planner).
void add_after_plan(const state & st, step_graph & g, const std::vector<int> & after);

// A solver's (or refiner's) agent call; `extra` non-empty: told who it is and what to do.
agent_call solver_call(const contemplation & c, int i, agent_kind kind, const std::string & extra);

}  // namespace muse::contemplating
