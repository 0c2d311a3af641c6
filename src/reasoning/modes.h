#pragma once
// The modes, one file each, and what they share. Internal to the reasoning layer: the registry
// (mode.h) lists them; each builds its steps on the request's graph (step-graph.h).

#include "reasoning/context.h"
#include "reasoning/mode.h"
#include "reasoning/step-graph.h"

namespace muse {

const mode & instant_mode();        // mode-single.cpp
const mode & thinking_mode();       // mode-single.cpp
const mode & contemplating_mode();  // mode-contemplating.cpp
const mode & auto_mode();           // mode-auto.cpp

// Sets the mode that runs (result.mode): `m`, or, when the request brings client tools that
// `m` does not allow, the first reasoning mode that does (saying so in mode_reason); then
// announces it (ask_event::MODE, with mode_reason).
void announce_mode(ask_context & ctx, ask_mode m);

// The request's text: the last user message.
std::string request_text(const std::vector<chat_message> & messages);

// The conversation with `suffix` appended to the last user message (a new user message when
// the conversation does not end with one). Agents that differ only in this suffix share the
// whole conversation's prompt tokens, which is what lets them fork one prefilled prefix.
std::vector<chat_message> with_suffix(const std::vector<chat_message> & messages, const std::string & suffix);

// The chat request every agent of a mode starts from: conversation, tools on show, Muse
// Glimmer reasoning strength, sampling.
chat_request base_request(const ask_context & ctx, reasoning_mode reasoning, const char * strength);

}  // namespace muse
