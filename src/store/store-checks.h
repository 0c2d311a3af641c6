#pragma once
// The checks every store makes on what it is asked to keep, written once so that SQLite and
// PostgreSQL refuse the same things with the same words (store.h's caps).
//
// Thread safety: reentrant.

#include "store/store.h"

#include <string>
#include <vector>

namespace muse {

// 1-64 of [A-Za-z0-9_.-].
bool valid_user_name(const std::string & n);

// s (empty allowed) is a JSON object (object) or array, of at most cap bytes; the message
// names field.
error check_json(const std::string & s, bool object, const char * field, size_t cap);

// A conversation title: at most k_store_max_title bytes of UTF-8.
error check_title(const std::string & title);

// A page size: 1..k_store_max_list.
error check_limit(int32_t limit);

// Items for append_items: how many, their types, sizes, content JSON and UTF-8.
error check_new_items(const std::vector<item_record> & items);

// A file to store: its name and size checked, and its record filled (a new id, the content's
// SHA-256, mime and purpose cut to their caps, created_at = now).
error new_file_record(const std::string & user_id, const std::string & name, const std::string & mime,
                      const std::string & purpose, const std::string & content, int64_t now, file_record & f);

}  // namespace muse
