#pragma once
// The store on PostgreSQL (libpq), for several Muse nodes sharing one state: users, keys,
// conversations, items, files (metadata and contents), quotas, usage and responses live in
// one database. A small pool of connections (a PGconn serves one thread at a time); every
// query is parameterised (PQexecParams); writes of several rows run in one transaction. The
// schema is versioned in the table muse_schema and migrated forward on open, under
// pg_advisory_lock so that two nodes starting together migrate once.
//
//     std::unique_ptr<muse::store> st;
//     muse::postgres_store_params p;
//     p.conninfo = "postgresql://muse@db.internal/muse";
//     if (muse::error e = muse::open_postgres_store(p, st)) { fprintf(stderr, "%s\n", e.message.c_str()); }
//
// File contents are content-addressed rows of the table blobs (bytea, keyed by sha256),
// deleted with their last reference. Search matches each query word as a prefix over the
// titles and the first 100000 characters of each item's text (to_tsvector('simple', ...)).
//
// Errors: as store.h. A database that cannot be reached (down, restarting, the connection
// lost) is ERROR_STORAGE naming it (the server's 503); the next call connects again, so the
// store recovers by itself once the database is back. A statement cut by a lost connection
// is retried once on a new connection only when nothing of its call had run yet; a COMMIT
// cut in flight is reported as failed (it may or may not have been applied).
//
// Text: PostgreSQL's text holds no NUL byte. An item's text or reasoning with one stores it as
// U+FFFD; any other field with one is ERROR_INVALID_ARGUMENT.
//
// Erased rows: PostgreSQL keeps dead row versions until (auto)vacuum reclaims them; erase_user
// and the freeing of a blob run VACUUM on the tables they touched (when the role may), so
// an erased user's rows do not linger in the tables' pages. The server's WAL and backups are
// the operator's: they keep what they keep.
//
// Thread safety: as store (store.h); any number of processes may share the database.

#include "store/store.h"

namespace muse {

struct postgres_store_params {
    std::string conninfo;             // postgres://... or postgresql://... URL, or "key=value" pairs
    int32_t     connections    = 4;   // pooled connections, 1-64
    int32_t     connect_timeout_s = 5;  // unless the conninfo says connect_timeout
    int32_t     pool_wait_ms   = 30000; // waiting for a free connection before ERROR_STORAGE
};

int   postgres_store_latest_version();
error open_postgres_store(const postgres_store_params & p, std::unique_ptr<store> & out);

// The conninfo as it may be printed: host, port, database and user, never the password.
std::string postgres_describe(const std::string & conninfo);

// Whether a --db value names PostgreSQL (postgres:// or postgresql://).
bool postgres_is_url(const std::string & db);

}  // namespace muse
