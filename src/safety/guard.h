#pragma once
// A guard model's second opinion, in Llama Guard 3's format: the task prompt listing the
// MLCommons categories S1-S14 around the user's turn, and its answer parsed ("safe", or
// "unsafe" and a line of categories). The gates run it beside the answer and hold the answer
// until it has spoken (app/safety-door.h).
//
//   std::string prompt = muse::guard_prompt(user_turn, muse::GUARD_PROMPT_LLAMA_GUARD);
//   muse::guard_verdict v = muse::parse_guard_output("unsafe\nS9");   // v.ok, !v.safe, {"S9"}
//
// Thread safety: reentrant.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace muse {

// How the guard's one user message is written.
enum guard_prompt_style {
    // The model's chat template writes Llama Guard 3's task prompt itself (Llama Guard 3's
    // own template does): the message is the turn alone.
    GUARD_PROMPT_TEMPLATE,
    // Llama Guard 3's task prompt exactly, for a Llama Guard model whose template does not
    // write it: categories, the conversation, then the instructions.
    GUARD_PROMPT_LLAMA_GUARD,
    // The same task for a model not trained on it (--guard-model self, a general model): the
    // instructions before the conversation, so that everything up to the turn is one fixed
    // part, computed once, and only the turn and a short tail are computed per request.
    GUARD_PROMPT_INSTRUCTIONS_FIRST,
};

// The style for a guard model, from its template's family ("llama-guard" when the template
// writes the task prompt; backend_caps::meta_json's chat_template) and its name.
guard_prompt_style guard_style_for(std::string_view template_family, std::string_view model_name);

std::string guard_prompt(std::string_view user_turn, guard_prompt_style style);

// "template", "llama-guard" or "instructions-first" (the trace's guard.prompt).
const char * guard_style_name(guard_prompt_style style);

struct guard_verdict {
    bool                     ok   = false;  // the output followed the format
    bool                     safe = true;
    std::vector<std::string> categories;    // "S1" .. "S14"
};

guard_verdict parse_guard_output(std::string_view text);

// The verdict's format as a GBNF grammar: "safe", or "unsafe", a line break and one to four
// categories. Constrained, a guard ends its answer after "safe" (the grammar leaves only the
// end of text), which is where Llama Guard 3 ends it too, and a weak model cannot answer out
// of format.
const char * guard_grammar();

// Most tokens a verdict may take: "unsafe", a line break and up to four categories.
constexpr int32_t guard_max_tokens = 12;

}  // namespace muse
