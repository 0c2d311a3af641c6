#pragma once
// A turn on a stored conversation, the same for every front end (the server's `conversation`
// field, later `muse chat` and the Responses API): the conversation's messages go before the
// new ones, and after the answer the turn (the new user and system messages, then the
// answer with its reasoning, trace and usage) is appended to it, all or nothing.
//
//   std::vector<muse::chat_message> history;
//   if (muse::error e = muse::load_history(st, user_id, conv_id, history)) { ... 404 / 503 ... }
//   req.messages.insert(req.messages.begin(), history.begin(), history.end());
//   ... run ...
//   muse::store_turn(st, user_id, conv_id, new_messages, result, "alice", model_id);
//
// Thread safety: reentrant (the store is thread-safe).

#include "app/data.h"
#include "app/safety-door.h"
#include "core/chat-types.h"
#include "reasoning/orchestrator.h"

#include <string>
#include <vector>

namespace muse {

// The conversation's messages, oldest first (its last k_store_max_list items; function calls
// are not replayed yet). ERROR_NOT_FOUND when it is not the user's.
error load_history(store & st, const std::string & user_id, const std::string & conversation_id, std::vector<chat_message> & out);

// Appends the turn: the user and system messages of `turn`, then `answer` (its text,
// reasoning, `muse` trace and usage). `author` wrote the messages; `model` the answer.
// With `safety` whose policy redacts the store, personal data in every stored text (the
// messages, the answer, its reasoning and trace) becomes typed placeholders first.
error store_turn(store & st, const std::string & user_id, const std::string & conversation_id,
                 const std::vector<chat_message> & turn, const ask_result & answer, const std::string & author,
                 const std::string & model, const safety_door * safety = nullptr);

}  // namespace muse
