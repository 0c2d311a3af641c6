#pragma once
// Where Muse keeps what it stores: <data dir>/muse.db (SQLite) and <data dir>/blobs/ (file
// contents). The front ends open it through here, so they never name the store's backend.
//
//   std::unique_ptr<muse::store> st;
//   if (muse::error e = muse::open_data_store(muse::resolve_data_dir(flag), st)) { ... e.message ... }
//
// Thread safety: reentrant; the store itself is thread-safe (store/store.h).

#include "core/error.h"
#include "store/store.h"

#include <memory>
#include <string>

namespace muse {

// The data directory: `flag` when given, else $MUSE_DATA_DIR, else $XDG_DATA_HOME/muse, else
// ~/.local/share/muse. ":memory:" keeps everything in memory (tests).
std::string resolve_data_dir(const std::string & flag);

// Opens (creating and migrating when needed) the store in data_dir.
error open_data_store(const std::string & data_dir, std::unique_ptr<store> & out);

// A new API key: "sk-muse-" and 48 hex digits from the system's random source.
std::string new_api_key();

}  // namespace muse
