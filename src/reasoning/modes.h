#pragma once
// The modes, one file each, and what they share. Internal to the orchestrator.

#include "reasoning/context.h"

namespace muse {

void run_instant(ask_context & ctx);
void run_thinking(ask_context & ctx);
void run_contemplating(ask_context & ctx);

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
