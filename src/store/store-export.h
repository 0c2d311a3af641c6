#pragma once
// What every store's export_user writes the same way, through the store interface alone: the
// user, the conversations with their items (paged), the files' metadata, the quota and the
// audit entries about the user. Each store adds what only it can read (usage, responses).
//
// Thread safety: as the store's methods it calls.

#include "store/store.h"

#include <nlohmann/json.hpp>

namespace muse {

// Fills doc's "object", "exported_at", "user", "conversations", "files" and "quota".
error export_user_common(store & st, const std::string & user_id, int64_t now_ms, nlohmann::ordered_json & doc);

// Fills doc's "audit".
error export_user_audit(store & st, const std::string & user_id, nlohmann::ordered_json & doc);

}  // namespace muse
