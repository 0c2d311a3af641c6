#pragma once
// The store on SQLite: one file (WAL, synchronous=FULL, foreign keys, secure_delete, a busy
// timeout), its schema versioned with PRAGMA user_version and migrated forward on open; one
// write connection owned by one thread (every write is a task it runs, in a transaction);
// pooled read-only connections for reads. File contents are content-addressed blobs under
// blob_dir (<sha256[0:2]>/<sha256>), written to a temporary name, synced, then renamed.
//
//     std::unique_ptr<muse::store> st;
//     muse::sqlite_store_params p;
//     p.path = muse::default_data_dir() + "/muse.db";
//     if (muse::error e = muse::open_sqlite_store(p, st)) { fprintf(stderr, "%s\n", e.message.c_str()); }
//
// ":memory:" keeps everything (blobs too) in memory, for tests.
//
// Thread safety: as store (store.h).

#include "store/store.h"

namespace muse {

struct sqlite_store_params {
    std::string path;      // the database file, or ":memory:"
    std::string blob_dir;  // default: "blobs" beside the database file
    int32_t     readers         = 4;     // pooled read connections, 1-64
    int32_t     busy_timeout_ms = 5000;  // waiting for another process's lock
    int32_t     schema_version  = -1;    // -1: the latest; tests open older versions to migrate them later
};

int   sqlite_store_latest_version();
error open_sqlite_store(const sqlite_store_params & p, std::unique_ptr<store> & out);

// $XDG_DATA_HOME/muse, else ~/.local/share/muse.
std::string default_data_dir();

}  // namespace muse
