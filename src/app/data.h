#pragma once
// Where Muse keeps what it stores: <data dir>/muse.db (SQLite) and <data dir>/blobs/ (file
// contents), or, with --db postgres://... ($MUSE_DB), a PostgreSQL database that several
// nodes share (file contents in it too; the data directory then keeps only local things such
// as `muse chat`'s history). The front ends open it through here, so they never name the
// store's backend.
//
//   std::unique_ptr<muse::store> st;
//   const std::string db = muse::resolve_db(db_flag);
//   if (std::string bad = muse::check_db(db); !bad.empty()) { ... usage error ... }
//   if (muse::error e = muse::open_data_store(muse::resolve_data_dir(flag), db, st)) { ... e.message ... }
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

// The shared database: `flag` when given, else $MUSE_DB; "" for none (the data directory's).
std::string resolve_db(const std::string & flag);

// "" when db is "" or a postgres:// / postgresql:// URL; else what is wrong, for a usage error.
std::string check_db(const std::string & db);

// Where the data lives, for a startup line: the database without its password, or the
// directory.
std::string describe_data(const std::string & data_dir, const std::string & db);

// Opens (creating and migrating when needed) the store: PostgreSQL at db when given, else
// SQLite in data_dir.
error open_data_store(const std::string & data_dir, const std::string & db, std::unique_ptr<store> & out);
error open_data_store(const std::string & data_dir, std::unique_ptr<store> & out);

// A new API key: "sk-muse-" and 48 hex digits from the system's random source.
std::string new_api_key();

}  // namespace muse
