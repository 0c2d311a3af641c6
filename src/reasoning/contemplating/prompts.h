#pragma once
// Contemplating's prompt texts and the small choices that shape its agents (solver roles,
// temperatures). Every agent's prompt is the shared conversation plus a suffix of its own, so
// that each one forks a prefilled prefix instead of computing the conversation again.
//
//   std::string s = planner_suffix(6, roles);   // appended to the last user message
//
// Thread safety: pure functions over their arguments.

#include "agents/plan.h"

#include <map>
#include <string>

namespace muse::contemplating {

// The i-th solver's role (the list cycles when K is larger).
const char * solver_role(int i);

// Temperature spread around the base, so that solvers explore differently but stay sane.
float solver_temperature(float base, int i);

// "a\nb", or whichever of them is non-empty.
std::string join_suffix(const std::string & a, const std::string & b);

// The planner's instructions.
std::string planner_suffix(int max_tasks);

// A sub-task agent's instructions; `deps` holds the results it builds on.
std::string subtask_suffix(const plan_task & task, const std::map<std::string, std::string> & results);

// The solvers' shared suffix: the sub-task results (if any) and the answer format.
std::string solver_shared_suffix(const plan & p, const std::map<std::string, std::string> & results);

// What opens the i-th solver's own reasoning ("Backward verifier:").
std::string solver_opening(int i);

// A solver or refiner told who it is, with `extra` instructions (refinement).
std::string solver_intro(int i, int k, const std::string & extra);

// A refiner's instructions: its earlier answer and the others'.
std::string refine_extra(const std::string & own, const std::string & others);

// A verifier's instructions: check one candidate answer and end with a verdict that
// parse_verdict reads.
std::string verifier_suffix(const std::string & candidate);

// The verdict at the end of a verifier's answer: 1 right, 0 wrong, -1 none found.
int parse_verdict(const std::string & answer);

// The synthesiser's instructions over the numbered candidates.
std::string synthesis_suffix(bool partial, const std::string & candidates);

}  // namespace muse::contemplating
