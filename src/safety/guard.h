#pragma once
// A guard model's second opinion, in Llama Guard 3's format: the task prompt listing the
// MLCommons categories S1-S14 around the user's turn, and its answer parsed ("safe", or
// "unsafe" and a line of categories). The gates run it beside the answer and hold the answer
// until it has spoken (app/safety-door.h).
//
//   std::string prompt = muse::guard_prompt(user_turn);       // one user message for the guard
//   muse::guard_verdict v = muse::parse_guard_output("unsafe\nS9");   // v.ok, !v.safe, {"S9"}
//
// Thread safety: reentrant.

#include <string>
#include <string_view>
#include <vector>

namespace muse {

std::string guard_prompt(std::string_view user_turn);

struct guard_verdict {
    bool                     ok   = false;  // the output followed the format
    bool                     safe = true;
    std::vector<std::string> categories;    // "S1" .. "S14"
};

guard_verdict parse_guard_output(std::string_view text);

}  // namespace muse
