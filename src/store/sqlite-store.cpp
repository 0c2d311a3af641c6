#include "sqlite-store.h"

#include "store-checks.h"
#include "store-export.h"

#include "core/random.h"
#include "core/utf8.h"

#include <hash/hash.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace muse {

std::string key_digest(const std::string & key) {
    return "sha256:" + hash_sha256_hex(key.data(), key.size());
}

std::string default_data_dir() {
    const char * xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) {
        return std::string(xdg) + "/muse";
    }
    const char * home = getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.local/share/muse";
}

namespace {

namespace fs = std::filesystem;

// Forward migrations: k_migrations[i] takes user_version i to i + 1.
const char * const k_migrations[] = {
    // 1: users, keys, conversations, items
    R"sql(
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    admin      INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys(user_id);
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT NOT NULL DEFAULT '',
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_user ON conversations(user_id, updated_at DESC);
CREATE TABLE items (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    type            TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT '',
    author          TEXT NOT NULL DEFAULT '',
    content         TEXT NOT NULL DEFAULT '[]',
    text            TEXT NOT NULL DEFAULT '',
    reasoning       TEXT NOT NULL DEFAULT '',
    trace           TEXT NOT NULL DEFAULT '',
    usage           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX items_user ON items(user_id);
)sql",
    // 2: files, quotas, the audit log, full-text search
    R"sql(
CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL DEFAULT '',
    purpose    TEXT NOT NULL DEFAULT '',
    sha256     TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX files_user ON files(user_id);
CREATE INDEX files_sha ON files(sha256);
CREATE TABLE quotas (
    user_id             TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    requests_per_minute INTEGER NOT NULL DEFAULT 0,
    tokens_per_day      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_user TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_target ON audit(target_user);
CREATE VIRTUAL TABLE search_fts USING fts5(body, user_id UNINDEXED, conversation_id UNINDEXED, item_id UNINDEXED);
INSERT INTO search_fts (body, user_id, conversation_id, item_id)
    SELECT title, user_id, id, '' FROM conversations WHERE title <> '';
INSERT INTO search_fts (body, user_id, conversation_id, item_id)
    SELECT text, user_id, conversation_id, id FROM items WHERE text <> '';
)sql",
    // 3: daily usage, for the tokens-per-day quota
    R"sql(
CREATE TABLE usage_daily (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day      INTEGER NOT NULL,
    tokens   INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
)sql",
    // 4: the Responses API's stored responses
    R"sql(
CREATE TABLE responses (
    id                   TEXT PRIMARY KEY,
    user_id              TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id      TEXT NOT NULL DEFAULT '',
    previous_response_id TEXT NOT NULL DEFAULT '',
    input                TEXT NOT NULL DEFAULT '[]',
    body                 TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL
);
CREATE INDEX responses_user ON responses(user_id);
)sql",
};
constexpr int k_latest = (int) (sizeof(k_migrations) / sizeof(k_migrations[0]));

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A user's conversations are ordered by updated_at, so it never repeats within a user: a
// conversation touched twice in one millisecond still moves to the front, and pages by time
// never split a tie.
int64_t next_touch(sqlite3 * db, const std::string & user_id) {
    int64_t t = now_ms();
    sqlite3_stmt * s = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(updated_at), 0) FROM conversations WHERE user_id = ?1", -1, &s, nullptr) ==
        SQLITE_OK) {
        sqlite3_bind_text(s, 1, user_id.data(), (int) user_id.size(), SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW) t = std::max<int64_t>(t, (int64_t) sqlite3_column_int64(s, 0) + 1);
    }
    sqlite3_finalize(s);
    return t;
}

struct db_closer {
    void operator()(sqlite3 * db) const { sqlite3_close_v2(db); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;

// What a failed SQLite call means for the caller: a full disk or a read-only or damaged data
// directory is ERROR_STORAGE (the server's 503), anything else internal.
error sql_error(sqlite3 * db, int rc, const std::string & what) {
    const int   prim = rc & 0xff;
    std::string msg  = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (prim) {
        case SQLITE_FULL:
            return { ERROR_STORAGE, "the data directory is full (" + msg + "): free space and retry" };
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
            return { ERROR_STORAGE, "the data directory cannot be written (" + msg + "): check its permissions" };
        case SQLITE_IOERR:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return { ERROR_STORAGE, "the database cannot be read or written (" + msg + ")" };
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return { ERROR_STORAGE, "the database is locked by another process (" + msg + ")" };
        default:
            return { ERROR_INTERNAL, msg };
    }
}

// A prepared statement with positional binds: stmt s(db, "SELECT ... ?1 ?2", err); s.bind(1, x).
class stmt {
  public:
    stmt(sqlite3 * db, const char * sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr); }
    ~stmt() { sqlite3_finalize(st_); }
    stmt(const stmt &)             = delete;
    stmt & operator=(const stmt &) = delete;

    bool   ok() const { return rc_ == SQLITE_OK; }
    error  prepare_error() const { return sql_error(db_, rc_, "prepare"); }
    stmt & bind(int i, const std::string & v) {
        sqlite3_bind_text(st_, i, v.data(), (int) v.size(), SQLITE_TRANSIENT);
        return *this;
    }
    stmt & bind(int i, int64_t v) {
        sqlite3_bind_int64(st_, i, v);
        return *this;
    }
    // SQLITE_ROW: a row is there; SQLITE_DONE: no more; else an error code.
    int step() { return sqlite3_step(st_); }

    std::string text(int col) const {
        const unsigned char * p = sqlite3_column_text(st_, col);
        return p ? std::string((const char *) p, (size_t) sqlite3_column_bytes(st_, col)) : std::string();
    }
    int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }

  private:
    sqlite3 *      db_;
    sqlite3_stmt * st_ = nullptr;
    int            rc_ = SQLITE_OK;
};

// Runs a statement that returns no rows.
error exec(sqlite3 * db, const char * sql) {
    char * msg = nullptr;
    int    rc  = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        std::string m = msg ? msg : sqlite3_errstr(rc);
        sqlite3_free(msg);
        return sql_error(nullptr, rc, m);
    }
    return {};
}

// A statement that must finish (INSERT/UPDATE/DELETE); `what` names it in errors.
error run(stmt & s, sqlite3 * db, const char * what) {
    if (!s.ok()) return s.prepare_error();
    int rc = s.step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return sql_error(db, rc, what);
    }
    return {};
}

// The search query as FTS5 syntax: each word a quoted prefix, all of them required.
std::string fts_query(const std::string & q) {
    std::string out, word;
    int         words = 0;
    auto        flush = [&] {
        if (!word.empty() && words < 16) {
            out += (out.empty() ? "" : " ") + std::string("\"") + word + "\"*";
            words++;
        }
        word.clear();
    };
    for (unsigned char c : q) {
        if (c == '"' || isspace(c) || c == '*' || c == '(' || c == ')' || c == ':' || c == '^') {
            flush();
        } else {
            word += (char) c;
        }
    }
    flush();
    return out;
}

// Column lists of the reads (string literals, so that a WHERE clause can follow).
#define MUSE_CONV_SELECT                                                                  \
    "SELECT c.id, c.user_id, c.title, c.metadata, c.created_at, c.updated_at, "          \
    "(SELECT COUNT(*) FROM items i WHERE i.conversation_id = c.id) FROM conversations c"
#define MUSE_ITEM_SELECT \
    "SELECT id, conversation_id, seq, type, role, author, content, text, reasoning, trace, usage, created_at FROM items"

class sqlite_store : public store {
  public:
    explicit sqlite_store(sqlite_store_params p) : prm(std::move(p)), memory(prm.path == ":memory:") {}

    ~sqlite_store() override {
        {
            std::lock_guard<std::mutex> lk(wmu);
            stopping = true;
        }
        wcv.notify_all();
        if (writer.joinable()) writer.join();
    }

    error open() {
        if (!memory) {
            std::error_code ec;
            const fs::path  dir = fs::path(prm.path).parent_path();
            // What is stored is private: a directory Muse creates is its owner's alone.
            if (!dir.empty() && !fs::exists(dir, ec)) {
                fs::create_directories(dir, ec);
                if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
            }
            if (prm.blob_dir.empty()) prm.blob_dir = (dir.empty() ? fs::path(".") : dir).string() + "/blobs";
        }
        sqlite3 * raw = nullptr;
        int       rc  = sqlite3_open_v2(prm.path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                        nullptr);
        wdb.reset(raw);
        if (rc != SQLITE_OK) {
            return sql_error(raw, rc, "open " + prm.path);
        }
        sqlite3_busy_timeout(raw, prm.busy_timeout_ms);
        sqlite3_extended_result_codes(raw, 1);
        for (const char * pragma : { "PRAGMA foreign_keys = ON", "PRAGMA secure_delete = ON", "PRAGMA synchronous = FULL" }) {
            if (error e = exec(raw, pragma)) return e;
        }
        if (!memory) {
            stmt s(raw, "PRAGMA journal_mode = WAL");
            if (!s.ok() || s.step() != SQLITE_ROW) return sql_error(raw, SQLITE_ERROR, "journal_mode");
            if (s.text(0) != "wal") {
                return { ERROR_STORAGE, prm.path + ": cannot use write-ahead logging (journal_mode is " + s.text(0) + ")" };
            }
        }
        if (error e = migrate(raw)) return e;
        writer = std::thread([this] { write_loop(); });
        return {};
    }

    int schema_version() const override { return version; }

    // --- users ------------------------------------------------------------------------------

    error add_user(const std::string & name, bool admin, const std::string & digest, user_record & out) override {
        if (!valid_user_name(name)) {
            return { ERROR_INVALID_ARGUMENT, "a user name is 1-64 letters, digits, '_', '.' or '-', got '" + name + "'" };
        }
        user_record u;
        u.id         = "user_" + random_hex(24);
        u.name       = name;
        u.admin      = admin;
        u.created_at = now_ms();
        error e      = write([&](sqlite3 * db) -> error {
            {
                stmt s(db, "SELECT 1 FROM users WHERE name = ?1");
                s.bind(1, name);
                if (s.step() == SQLITE_ROW) return { ERROR_INVALID_ARGUMENT, "the user '" + name + "' already exists" };
            }
            stmt s(db, "INSERT INTO users (id, name, admin, created_at) VALUES (?1, ?2, ?3, ?4)");
            s.bind(1, u.id).bind(2, name).bind(3, (int64_t) admin).bind(4, u.created_at);
            if (error e = run(s, db, "add user")) return e;
            if (!digest.empty()) {
                if (error e = insert_key(db, u.id, digest)) return e;
            }
            return insert_audit(db, "cli", "user_add", u.id, name + (admin ? " (admin)" : ""));
        });
        if (!e) out = u;
        return e;
    }

    error add_key(const std::string & user_id, const std::string & digest) override {
        return write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            if (error e = insert_key(db, user_id, digest)) return e;
            return insert_audit(db, "cli", "key_add", user_id, "");
        });
    }

    error find_user_by_name(const std::string & name, user_record & out) override {
        return read([&](sqlite3 * db) {
            stmt s(db, "SELECT id, name, admin, created_at FROM users WHERE name = ?1");
            s.bind(1, name);
            return one_user(s, db, out, "no user named '" + name + "'");
        });
    }

    error find_user_by_key(const std::string & digest, user_record & out) override {
        return read([&](sqlite3 * db) {
            stmt s(db, "SELECT u.id, u.name, u.admin, u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id "
                       "WHERE k.digest = ?1");
            s.bind(1, digest);
            return one_user(s, db, out, "no user has this key");
        });
    }

    error get_user(const std::string & user_id, user_record & out) override {
        return read([&](sqlite3 * db) {
            stmt s(db, "SELECT id, name, admin, created_at FROM users WHERE id = ?1");
            s.bind(1, user_id);
            return one_user(s, db, out, "no such user");
        });
    }

    error list_users(std::vector<user_record> & out) override {
        return read([&](sqlite3 * db) -> error {
            out.clear();
            stmt s(db, "SELECT id, name, admin, created_at FROM users ORDER BY name");
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) out.push_back(user_of(s));
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "list users");
        });
    }

    error count_keys(int64_t & n) override {
        return read([&](sqlite3 * db) -> error {
            stmt s(db, "SELECT COUNT(*) FROM api_keys");
            if (!s.ok()) return s.prepare_error();
            if (s.step() != SQLITE_ROW) return sql_error(db, SQLITE_ERROR, "count keys");
            n = s.i64(0);
            return {};
        });
    }

    error erase_user(const std::string & user_id, const std::string & actor) override {
        std::vector<std::string> blobs;
        error                    e = write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            if (error e = shas_of(db, "SELECT DISTINCT sha256 FROM files WHERE user_id = ?1", user_id, blobs)) return e;
            for (const char * sql : { "DELETE FROM search_fts WHERE user_id = ?1", "DELETE FROM audit WHERE target_user = ?1",
                                      "DELETE FROM users WHERE id = ?1" }) {
                stmt s(db, sql);
                s.bind(1, user_id);
                if (error e = run(s, db, "erase user")) return e;
            }
            return insert_audit(db, actor, "user_erase", user_id, "");
        });
        if (e) return e;
        return scrub(blobs);
    }

    // --- conversations ----------------------------------------------------------------------

    error create_conversation(const std::string & user_id, const std::string & title, const std::string & metadata_json,
                              conversation_record & out) override {
        if (error e = check_title(title)) return e;
        const std::string meta = metadata_json.empty() ? "{}" : metadata_json;
        if (error e = check_json(meta, true, "metadata", k_store_max_metadata)) return e;
        conversation_record c;
        c.id            = "conv_" + random_hex(48);
        c.user_id       = user_id;
        c.title         = title;
        c.metadata_json = meta;
        error e                     = write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            c.created_at = c.updated_at = next_touch(db, user_id);
            stmt s(db, "INSERT INTO conversations (id, user_id, title, metadata, created_at, updated_at) "
                                           "VALUES (?1, ?2, ?3, ?4, ?5, ?5)");
            s.bind(1, c.id).bind(2, user_id).bind(3, title).bind(4, meta).bind(5, c.created_at);
            if (error e = run(s, db, "create conversation")) return e;
            return index_title(db, user_id, c.id, title);
        });
        if (!e) out = c;
        return e;
    }

    error get_conversation(const std::string & user_id, const std::string & id, conversation_record & out) override {
        return read([&](sqlite3 * db) -> error {
            stmt s(db, MUSE_CONV_SELECT " WHERE c.id = ?1 AND c.user_id = ?2");
            s.bind(1, id).bind(2, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc = s.step();
            if (rc == SQLITE_ROW) {
                out = conv_of(s);
                return {};
            }
            return rc == SQLITE_DONE ? not_found("conversation", id) : sql_error(db, rc, "get conversation");
        });
    }

    error list_conversations(const std::string & user_id, int32_t limit, int64_t before, std::vector<conversation_record> & out) override {
        if (error e = check_limit(limit)) return e;
        return read([&](sqlite3 * db) -> error {
            out.clear();
            stmt s(db, MUSE_CONV_SELECT " WHERE c.user_id = ?1 AND (?2 <= 0 OR c.updated_at < ?2) "
                                     "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?3");
            s.bind(1, user_id).bind(2, before).bind(3, (int64_t) limit);
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) out.push_back(conv_of(s));
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "list conversations");
        });
    }

    error update_conversation(const std::string & user_id, const std::string & id, const std::string & title,
                              const std::string & metadata_json) override {
        if (error e = check_title(title)) return e;
        const std::string meta = metadata_json.empty() ? "{}" : metadata_json;
        if (error e = check_json(meta, true, "metadata", k_store_max_metadata)) return e;
        return write([&](sqlite3 * db) -> error {
            if (error e = require_conversation(db, user_id, id)) return e;
            // A rename is not activity: the list's order (updated_at) stays as it was.
            stmt s(db, "UPDATE conversations SET title = ?1, metadata = ?2 WHERE id = ?3");
            s.bind(1, title).bind(2, meta).bind(3, id);
            if (error e = run(s, db, "update conversation")) return e;
            stmt d(db, "DELETE FROM search_fts WHERE conversation_id = ?1 AND item_id = ''");
            d.bind(1, id);
            if (error e = run(d, db, "update conversation")) return e;
            return index_title(db, user_id, id, title);
        });
    }

    error delete_conversation(const std::string & user_id, const std::string & id) override {
        return write([&](sqlite3 * db) -> error {
            if (error e = require_conversation(db, user_id, id)) return e;
            for (const char * sql : { "DELETE FROM search_fts WHERE conversation_id = ?1", "DELETE FROM conversations WHERE id = ?1" }) {
                stmt s(db, sql);
                s.bind(1, id);
                if (error e = run(s, db, "delete conversation")) return e;
            }
            return {};
        });
    }

    // --- items ------------------------------------------------------------------------------

    error append_items(const std::string & user_id, const std::string & conversation_id, std::vector<item_record> & items) override {
        if (items.empty()) return {};
        if (error e = check_new_items(items)) return e;
        const int64_t            t = now_ms();
        std::vector<item_record> filled = items;
        error                    e      = write([&](sqlite3 * db) -> error {
            if (error e = require_conversation(db, user_id, conversation_id)) return e;
            int64_t seq = 0;
            {
                stmt s(db, "SELECT COALESCE(MAX(seq), 0) FROM items WHERE conversation_id = ?1");
                s.bind(1, conversation_id);
                if (s.step() != SQLITE_ROW) return sql_error(db, SQLITE_ERROR, "append items");
                seq = s.i64(0);
            }
            for (item_record & it : filled) {
                if (it.id.empty()) {
                    const char * prefix = it.type == "function_call" ? "fc_" : it.type == "function_call_output" ? "fco_"
                                                                             : it.type == "reasoning"            ? "rs_"
                                                                                                                 : "msg_";
                    it.id = prefix + random_hex(48);
                }
                it.conversation_id = conversation_id;
                it.seq             = ++seq;
                it.created_at      = t;
                if (it.content_json.empty()) it.content_json = "[]";
                stmt s(db, "INSERT INTO items (id, conversation_id, user_id, seq, type, role, author, content, text, reasoning, "
                                                      "trace, usage, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
                s.bind(1, it.id).bind(2, conversation_id).bind(3, user_id).bind(4, it.seq).bind(5, it.type).bind(6, it.role);
                s.bind(7, it.author).bind(8, it.content_json).bind(9, it.text).bind(10, it.reasoning).bind(11, it.trace_json);
                s.bind(12, it.usage_json).bind(13, t);
                if (!s.ok()) return s.prepare_error();
                int rc = s.step();
                if ((rc & 0xff) == SQLITE_CONSTRAINT) {
                    return { ERROR_INVALID_ARGUMENT, "an item with the id '" + it.id + "' already exists" };
                }
                if (rc != SQLITE_DONE) return sql_error(db, rc, "append items");
                if (!it.text.empty()) {
                    stmt f(db, "INSERT INTO search_fts (body, user_id, conversation_id, item_id) VALUES (?1, ?2, ?3, ?4)");
                    f.bind(1, it.text).bind(2, user_id).bind(3, conversation_id).bind(4, it.id);
                    if (error e = run(f, db, "index item")) return e;
                }
            }
            stmt u(db, "UPDATE conversations SET updated_at = ?1 WHERE id = ?2");
            u.bind(1, next_touch(db, user_id)).bind(2, conversation_id);
            return run(u, db, "append items");
        });
        if (!e) items = std::move(filled);
        return e;
    }

    error list_items(const std::string & user_id, const std::string & conversation_id, int64_t after_seq, int32_t limit,
                     std::vector<item_record> & out, bool newest_first) override {
        if (error e = check_limit(limit)) return e;
        return read([&](sqlite3 * db) -> error {
            out.clear();
            if (error e = require_conversation(db, user_id, conversation_id)) return e;
            stmt s(db, newest_first ? MUSE_ITEM_SELECT " WHERE conversation_id = ?1 AND (?2 <= 0 OR seq < ?2) ORDER BY seq DESC LIMIT ?3"
                                    : MUSE_ITEM_SELECT " WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
            s.bind(1, conversation_id).bind(2, after_seq).bind(3, (int64_t) limit);
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) out.push_back(item_of(s));
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "list items");
        });
    }

    error get_item(const std::string & user_id, const std::string & item_id, item_record & out) override {
        return read([&](sqlite3 * db) -> error {
            stmt s(db, MUSE_ITEM_SELECT " WHERE id = ?1 AND user_id = ?2");
            s.bind(1, item_id).bind(2, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc = s.step();
            if (rc == SQLITE_ROW) {
                out = item_of(s);
                return {};
            }
            return rc == SQLITE_DONE ? not_found("item", item_id) : sql_error(db, rc, "get item");
        });
    }

    error delete_item(const std::string & user_id, const std::string & item_id) override {
        return write([&](sqlite3 * db) -> error {
            stmt q(db, "SELECT 1 FROM items WHERE id = ?1 AND user_id = ?2");
            q.bind(1, item_id).bind(2, user_id);
            if (q.step() != SQLITE_ROW) return not_found("item", item_id);
            for (const char * sql : { "DELETE FROM search_fts WHERE item_id = ?1", "DELETE FROM items WHERE id = ?1" }) {
                stmt s(db, sql);
                s.bind(1, item_id);
                if (error e = run(s, db, "delete item")) return e;
            }
            return {};
        });
    }

    error search(const std::string & user_id, const std::string & query, int32_t limit, std::vector<search_hit> & out) override {
        if (error e = check_limit(limit)) return e;
        if (query.size() > 256) {
            return { ERROR_INVALID_ARGUMENT, "a search query is at most 256 bytes, got " + std::to_string(query.size()) };
        }
        const std::string q = fts_query(query);
        out.clear();
        if (q.empty()) return {};
        return read([&](sqlite3 * db) -> error {
            stmt s(db, "SELECT f.conversation_id, f.item_id, c.title, snippet(search_fts, 0, '[', ']', '...', 12) "
                       "FROM search_fts f JOIN conversations c ON c.id = f.conversation_id "
                       "WHERE search_fts MATCH ?1 AND f.user_id = ?2 ORDER BY rank LIMIT ?3");
            s.bind(1, q).bind(2, user_id).bind(3, (int64_t) limit);
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) out.push_back({ s.text(0), s.text(1), s.text(2), s.text(3) });
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "search");
        });
    }

    // --- files ------------------------------------------------------------------------------

    error put_file(const std::string & user_id, const std::string & name, const std::string & mime, const std::string & purpose,
                   const std::string & content, file_record & out) override {
        file_record f;
        if (error e = new_file_record(user_id, name, mime, purpose, content, now_ms(), f)) return e;
        {
            error e = read([&](sqlite3 * db) { return require_user(db, user_id); });
            if (e) return e;
        }
        // The blob first, synced: a row never points at a blob that is not there.
        if (error e = write_blob(f.sha256, content)) return e;
        error e = write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            stmt s(db, "INSERT INTO files (id, user_id, name, mime, purpose, sha256, bytes, created_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
            s.bind(1, f.id).bind(2, user_id).bind(3, f.name).bind(4, f.mime).bind(5, f.purpose).bind(6, f.sha256).bind(7, f.bytes);
            s.bind(8, f.created_at);
            return run(s, db, "put file");
        });
        if (e) {
            scrub({ f.sha256 });  // unreferenced again: remove what was written
            return e;
        }
        out = f;
        return {};
    }

    error get_file(const std::string & user_id, const std::string & id, file_record & out, std::string * content) override {
        error e = read([&](sqlite3 * db) -> error {
            stmt s(db, "SELECT id, user_id, name, mime, purpose, sha256, bytes, created_at FROM files WHERE id = ?1 AND user_id = ?2");
            s.bind(1, id).bind(2, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc = s.step();
            if (rc == SQLITE_ROW) {
                out = file_of(s);
                return {};
            }
            return rc == SQLITE_DONE ? not_found("file", id) : sql_error(db, rc, "get file");
        });
        if (e || !content) return e;
        return read_blob(out.sha256, *content);
    }

    error list_files(const std::string & user_id, std::vector<file_record> & out) override {
        return read([&](sqlite3 * db) -> error {
            out.clear();
            stmt s(db, "SELECT id, user_id, name, mime, purpose, sha256, bytes, created_at FROM files WHERE user_id = ?1 "
                       "ORDER BY created_at, rowid");
            s.bind(1, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) out.push_back(file_of(s));
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "list files");
        });
    }

    error file_totals(int64_t & files, int64_t & bytes) override {
        return read([&](sqlite3 * db) -> error {
            stmt s(db, "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files");
            if (!s.ok()) return s.prepare_error();
            if (s.step() != SQLITE_ROW) return sql_error(db, SQLITE_ERROR, "file totals");
            files = s.i64(0);
            bytes = s.i64(1);
            return {};
        });
    }

    error delete_file(const std::string & user_id, const std::string & id) override {
        std::string sha;
        error       e = write([&](sqlite3 * db) -> error {
            stmt q(db, "SELECT sha256 FROM files WHERE id = ?1 AND user_id = ?2");
            q.bind(1, id).bind(2, user_id);
            if (q.step() != SQLITE_ROW) return not_found("file", id);
            sha = q.text(0);
            stmt s(db, "DELETE FROM files WHERE id = ?1");
            s.bind(1, id);
            return run(s, db, "delete file");
        });
        if (e) return e;
        return scrub({ sha });
    }

    // --- quotas and audit -------------------------------------------------------------------

    error set_quota(const std::string & user_id, const quota_record & q, const std::string & actor) override {
        if (q.requests_per_minute < 0 || q.requests_per_minute > 1000000 || q.tokens_per_day < 0 ||
            q.tokens_per_day > (int64_t) 1e12) {
            return { ERROR_INVALID_ARGUMENT, "quotas: requests_per_minute in [0, 1000000], tokens_per_day in [0, 1e12] "
                                             "(0 = unlimited)" };
        }
        return write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            stmt s(db, "INSERT INTO quotas (user_id, requests_per_minute, tokens_per_day) VALUES (?1, ?2, ?3) "
                       "ON CONFLICT (user_id) DO UPDATE SET requests_per_minute = ?2, tokens_per_day = ?3");
            s.bind(1, user_id).bind(2, q.requests_per_minute).bind(3, q.tokens_per_day);
            if (error e = run(s, db, "set quota")) return e;
            return insert_audit(db, actor, "quota_set", user_id,
                                std::to_string(q.requests_per_minute) + " requests/min, " + std::to_string(q.tokens_per_day) +
                                    " tokens/day");
        });
    }

    error get_quota(const std::string & user_id, quota_record & out) override {
        return read([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            out = {};
            stmt s(db, "SELECT requests_per_minute, tokens_per_day FROM quotas WHERE user_id = ?1");
            s.bind(1, user_id);
            if (s.step() == SQLITE_ROW) {
                out.requests_per_minute = s.i64(0);
                out.tokens_per_day      = s.i64(1);
            }
            return {};
        });
    }

    error put_response(const std::string & user_id, response_record & r) override {
        if (r.input_json.size() + r.body_json.size() > k_store_max_item_bytes) {
            return { ERROR_INVALID_ARGUMENT, "a response is at most " + std::to_string(k_store_max_item_bytes) + " bytes of JSON" };
        }
        if (error e = check_json(r.input_json, false, "input", k_store_max_item_bytes)) return e;
        if (error e = check_json(r.body_json, true, "response", k_store_max_item_bytes)) return e;
        r.user_id    = user_id;
        r.created_at = now_ms();
        return write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            stmt s(db, "INSERT INTO responses (id, user_id, conversation_id, previous_response_id, input, body, created_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            s.bind(1, r.id).bind(2, user_id).bind(3, r.conversation_id).bind(4, r.previous_response_id).bind(5, r.input_json);
            s.bind(6, r.body_json).bind(7, r.created_at);
            return run(s, db, "store response");
        });
    }

    error get_response(const std::string & user_id, const std::string & id, response_record & out) override {
        return read([&](sqlite3 * db) -> error {
            stmt s(db, "SELECT id, user_id, conversation_id, previous_response_id, input, body, created_at FROM responses "
                       "WHERE id = ?1 AND user_id = ?2");
            s.bind(1, id).bind(2, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc = s.step();
            if (rc == SQLITE_ROW) {
                out = { s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.i64(6) };
                return {};
            }
            return rc == SQLITE_DONE ? not_found("response", id) : sql_error(db, rc, "get response");
        });
    }

    error delete_response(const std::string & user_id, const std::string & id) override {
        error e = write([&](sqlite3 * db) -> error {
            stmt q(db, "SELECT 1 FROM responses WHERE id = ?1 AND user_id = ?2");
            q.bind(1, id).bind(2, user_id);
            if (q.step() != SQLITE_ROW) return not_found("response", id);
            stmt s(db, "DELETE FROM responses WHERE id = ?1");
            s.bind(1, id);
            return run(s, db, "delete response");
        });
        if (e) return e;
        return scrub({});
    }

    error add_usage(const std::string & user_id, int64_t day, int64_t tokens, int64_t requests) override {
        if (day < 0 || day > 1000000 || tokens < 0 || tokens > (int64_t) 1e12 || requests < 0 || requests > 1000000) {
            return { ERROR_INVALID_ARGUMENT, "usage: day, tokens or requests out of range" };
        }
        return write([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            stmt s(db, "INSERT INTO usage_daily (user_id, day, tokens, requests) VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (user_id, day) DO UPDATE SET tokens = tokens + ?3, requests = requests + ?4");
            s.bind(1, user_id).bind(2, day).bind(3, tokens).bind(4, requests);
            return run(s, db, "add usage");
        });
    }

    error get_usage(const std::string & user_id, int64_t day, int64_t & tokens, int64_t & requests) override {
        return read([&](sqlite3 * db) -> error {
            if (error e = require_user(db, user_id)) return e;
            tokens = requests = 0;
            stmt s(db, "SELECT tokens, requests FROM usage_daily WHERE user_id = ?1 AND day = ?2");
            s.bind(1, user_id).bind(2, day);
            if (s.step() == SQLITE_ROW) {
                tokens   = s.i64(0);
                requests = s.i64(1);
            }
            return {};
        });
    }

    error audit(const std::string & actor, const std::string & action, const std::string & target_user,
                const std::string & detail) override {
        return write([&](sqlite3 * db) { return insert_audit(db, actor, action, target_user, detail); });
    }

    error list_audit(const std::string & user_id, std::vector<audit_record> & out) override {
        return read([&](sqlite3 * db) -> error {
            out.clear();
            stmt s(db, "SELECT id, at, actor, action, target_user, detail FROM audit WHERE ?1 = '' OR target_user = ?1 ORDER BY id");
            s.bind(1, user_id);
            if (!s.ok()) return s.prepare_error();
            int rc;
            while ((rc = s.step()) == SQLITE_ROW) {
                out.push_back({ s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.text(5) });
            }
            return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "list audit");
        });
    }

    error export_user(const std::string & user_id, std::string & json_out) override {
        using ojson = nlohmann::ordered_json;
        ojson doc;
        if (error e = export_user_common(*this, user_id, now_ms(), doc)) return e;
        {
            ojson usage = ojson::array();
            error ue    = read([&](sqlite3 * db) -> error {
                stmt s(db, "SELECT day, tokens, requests FROM usage_daily WHERE user_id = ?1 ORDER BY day");
                s.bind(1, user_id);
                if (!s.ok()) return s.prepare_error();
                int rc;
                while ((rc = s.step()) == SQLITE_ROW) {
                    usage.push_back({ { "day", s.i64(0) }, { "tokens", s.i64(1) }, { "requests", s.i64(2) } });
                }
                return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "usage");
            });
            if (ue) return ue;
            doc["usage"] = usage;
        }
        {
            ojson resps = ojson::array();
            error re    = read([&](sqlite3 * db) -> error {
                stmt s(db, "SELECT id, conversation_id, previous_response_id, input, body, created_at FROM responses "
                           "WHERE user_id = ?1 ORDER BY created_at, rowid");
                s.bind(1, user_id);
                if (!s.ok()) return s.prepare_error();
                int rc;
                while ((rc = s.step()) == SQLITE_ROW) {
                    resps.push_back({ { "id", s.text(0) }, { "conversation_id", s.text(1) }, { "previous_response_id", s.text(2) },
                                      { "input", ojson::parse(s.text(3), nullptr, false) },
                                      { "response", ojson::parse(s.text(4), nullptr, false) }, { "created_at", s.i64(5) } });
                }
                return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "responses");
            });
            if (re) return re;
            doc["responses"] = resps;
        }
        if (error e = export_user_audit(*this, user_id, doc)) return e;
        json_out     = doc.dump(2, ' ', false, ojson::error_handler_t::replace);
        return {};
    }

  private:
    sqlite_store_params prm;
    const bool          memory;
    int                 version = 0;

    // the writer
    db_ptr                             wdb;
    std::thread                        writer;
    std::mutex                         wmu;
    std::condition_variable            wcv;
    std::deque<std::function<void()>>  wq;
    bool                               stopping = false;

    // the readers
    std::mutex          rmu;
    std::vector<db_ptr> idle_readers;
    int32_t             n_readers = 0;

    // ":memory:" blobs
    std::mutex                         bmu;
    std::map<std::string, std::string> mem_blobs;

    void write_loop() {
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock<std::mutex> lk(wmu);
                wcv.wait(lk, [&] { return stopping || !wq.empty(); });
                if (wq.empty()) return;
                task = std::move(wq.front());
                wq.pop_front();
            }
            task();
        }
    }

    // Runs fn in a transaction on the writer thread and waits for it.
    error write(const std::function<error(sqlite3 *)> & fn) {
        std::promise<error> done;
        auto                fut  = done.get_future();
        auto                task = [&] {
            sqlite3 * db = wdb.get();
            error     e  = exec(db, "BEGIN IMMEDIATE");
            if (!e) {
                try {
                    e = fn(db);
                } catch (const std::exception & ex) {
                    e = { ERROR_INTERNAL, std::string("store: ") + ex.what() };
                }
                if (!e) e = exec(db, "COMMIT");
                if (e) exec(db, "ROLLBACK");
            }
            done.set_value(std::move(e));
        };
        {
            std::lock_guard<std::mutex> lk(wmu);
            if (stopping) return { ERROR_STORAGE, "the store is closed" };
            wq.push_back(task);
        }
        wcv.notify_one();
        return fut.get();
    }

    // Runs fn on a pooled read connection (":memory:": on the writer, the only connection).
    error read(const std::function<error(sqlite3 *)> & fn) {
        if (memory) {
            std::promise<error> done;
            auto                fut = done.get_future();
            {
                std::lock_guard<std::mutex> lk(wmu);
                if (stopping) return { ERROR_STORAGE, "the store is closed" };
                wq.push_back([&] {
                    try {
                        done.set_value(fn(wdb.get()));
                    } catch (const std::exception & ex) {
                        done.set_value({ ERROR_INTERNAL, std::string("store: ") + ex.what() });
                    }
                });
            }
            wcv.notify_one();
            return fut.get();
        }
        db_ptr db;
        {
            std::lock_guard<std::mutex> lk(rmu);
            if (!idle_readers.empty()) {
                db = std::move(idle_readers.back());
                idle_readers.pop_back();
            }
        }
        if (!db) {
            sqlite3 * raw = nullptr;
            int rc = sqlite3_open_v2(prm.path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
            db.reset(raw);
            if (rc != SQLITE_OK) return sql_error(raw, rc, "open " + prm.path + " for reading");
            sqlite3_busy_timeout(raw, prm.busy_timeout_ms);
        }
        error e;
        try {
            e = fn(db.get());
        } catch (const std::exception & ex) {
            e = { ERROR_INTERNAL, std::string("store: ") + ex.what() };
        }
        std::lock_guard<std::mutex> lk(rmu);
        if ((int32_t) idle_readers.size() < prm.readers) idle_readers.push_back(std::move(db));
        return e;
    }

    error migrate(sqlite3 * db) {
        stmt v(db, "PRAGMA user_version");
        if (!v.ok() || v.step() != SQLITE_ROW) return sql_error(db, SQLITE_ERROR, "read the schema version");
        version          = (int) v.i64(0);
        const int target = prm.schema_version < 0 ? k_latest : std::min(prm.schema_version, k_latest);
        if (version > k_latest) {
            return { ERROR_STORAGE, prm.path + " has schema version " + std::to_string(version) + ", newer than this Muse (" +
                                        std::to_string(k_latest) + "): use a newer Muse, or another --data-dir" };
        }
        while (version < target) {
            if (error e = exec(db, "BEGIN IMMEDIATE")) return e;
            error e = exec(db, k_migrations[version]);
            if (!e) e = exec(db, ("PRAGMA user_version = " + std::to_string(version + 1)).c_str());
            if (!e) e = exec(db, "COMMIT");
            if (e) {
                exec(db, "ROLLBACK");
                return { e.code == ERROR_INTERNAL ? ERROR_STORAGE : e.code,
                         "migrating " + prm.path + " to schema version " + std::to_string(version + 1) + ": " + e.message };
            }
            version++;
        }
        return {};
    }

    // --- helpers on a connection

    static user_record user_of(const stmt & s) { return { s.text(0), s.text(1), s.i64(2) != 0, s.i64(3) }; }

    static conversation_record conv_of(const stmt & s) {
        conversation_record c;
        c.id            = s.text(0);
        c.user_id       = s.text(1);
        c.title         = s.text(2);
        c.metadata_json = s.text(3);
        c.created_at    = s.i64(4);
        c.updated_at    = s.i64(5);
        c.items         = s.i64(6);
        return c;
    }

    static item_record item_of(const stmt & s) {
        item_record it;
        it.id              = s.text(0);
        it.conversation_id = s.text(1);
        it.seq             = s.i64(2);
        it.type            = s.text(3);
        it.role            = s.text(4);
        it.author          = s.text(5);
        it.content_json    = s.text(6);
        it.text            = s.text(7);
        it.reasoning       = s.text(8);
        it.trace_json      = s.text(9);
        it.usage_json      = s.text(10);
        it.created_at      = s.i64(11);
        return it;
    }

    static file_record file_of(const stmt & s) {
        return { s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.i64(6), s.i64(7) };
    }

    static error not_found(const char * what, const std::string & id) {
        return { ERROR_NOT_FOUND, std::string("no ") + what + " with the id '" + utf8_head(id, 80) + "'" };
    }

    static error one_user(stmt & s, sqlite3 * db, user_record & out, const std::string & missing) {
        if (!s.ok()) return s.prepare_error();
        int rc = s.step();
        if (rc == SQLITE_ROW) {
            out = user_of(s);
            return {};
        }
        return rc == SQLITE_DONE ? error{ ERROR_NOT_FOUND, missing } : sql_error(db, rc, "find user");
    }

    static error require_user(sqlite3 * db, const std::string & user_id) {
        stmt s(db, "SELECT 1 FROM users WHERE id = ?1");
        s.bind(1, user_id);
        if (!s.ok()) return s.prepare_error();
        return s.step() == SQLITE_ROW ? error{} : error{ ERROR_NOT_FOUND, "no such user" };
    }

    static error require_conversation(sqlite3 * db, const std::string & user_id, const std::string & id) {
        stmt s(db, "SELECT 1 FROM conversations WHERE id = ?1 AND user_id = ?2");
        s.bind(1, id).bind(2, user_id);
        if (!s.ok()) return s.prepare_error();
        return s.step() == SQLITE_ROW ? error{} : not_found("conversation", id);
    }

    static error insert_key(sqlite3 * db, const std::string & user_id, const std::string & digest) {
        if (digest.rfind("sha256:", 0) != 0 || digest.size() != 7 + 64) {
            return { ERROR_INVALID_ARGUMENT, "a key digest is sha256: and 64 hex digits" };
        }
        stmt s(db, "INSERT INTO api_keys (digest, user_id, created_at) VALUES (?1, ?2, ?3)");
        s.bind(1, digest).bind(2, user_id).bind(3, now_ms());
        if (!s.ok()) return s.prepare_error();
        int rc = s.step();
        if ((rc & 0xff) == SQLITE_CONSTRAINT) return { ERROR_INVALID_ARGUMENT, "this key is already in use" };
        return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "add key");
    }

    static error insert_audit(sqlite3 * db, const std::string & actor, const std::string & action, const std::string & target,
                              const std::string & detail) {
        stmt s(db, "INSERT INTO audit (at, actor, action, target_user, detail) VALUES (?1, ?2, ?3, ?4, ?5)");
        s.bind(1, now_ms()).bind(2, utf8_head(actor, 128)).bind(3, utf8_head(action, 64)).bind(4, target).bind(5, utf8_head(detail, 1024));
        return run(s, db, "audit");
    }

    static error index_title(sqlite3 * db, const std::string & user_id, const std::string & conv_id, const std::string & title) {
        if (title.empty()) return {};
        stmt s(db, "INSERT INTO search_fts (body, user_id, conversation_id, item_id) VALUES (?1, ?2, ?3, '')");
        s.bind(1, title).bind(2, user_id).bind(3, conv_id);
        return run(s, db, "index title");
    }

    static error shas_of(sqlite3 * db, const char * sql, const std::string & arg, std::vector<std::string> & out) {
        stmt s(db, sql);
        s.bind(1, arg);
        if (!s.ok()) return s.prepare_error();
        int rc;
        while ((rc = s.step()) == SQLITE_ROW) out.push_back(s.text(0));
        return rc == SQLITE_DONE ? error{} : sql_error(db, rc, "files");
    }

    // After an erase: the search index rewritten without the deleted entries, the WAL
    // checkpointed and truncated (its frames held the deleted rows), and the blobs nobody
    // references any more deleted.
    error scrub(const std::vector<std::string> & shas) {
        error e = write([&](sqlite3 * db) { return exec(db, "INSERT INTO search_fts (search_fts) VALUES ('optimize')"); });
        if (e) return e;
        if (!memory) {
            std::promise<error> done;
            auto                fut = done.get_future();
            {
                std::lock_guard<std::mutex> lk(wmu);
                wq.push_back([&] { done.set_value(exec(wdb.get(), "PRAGMA wal_checkpoint(TRUNCATE)")); });
            }
            wcv.notify_one();
            if (error ce = fut.get()) return ce;
        }
        for (const std::string & sha : shas) {
            bool used = false;
            e         = read([&](sqlite3 * db) -> error {
                stmt s(db, "SELECT 1 FROM files WHERE sha256 = ?1 LIMIT 1");
                s.bind(1, sha);
                used = s.step() == SQLITE_ROW;
                return {};
            });
            if (e) return e;
            if (!used) remove_blob(sha);
        }
        return {};
    }

    std::string blob_path(const std::string & sha) const { return prm.blob_dir + "/" + sha.substr(0, 2) + "/" + sha; }

    error write_blob(const std::string & sha, const std::string & content) {
        if (memory) {
            std::lock_guard<std::mutex> lk(bmu);
            mem_blobs[sha] = content;
            return {};
        }
        const std::string path = blob_path(sha);
        std::error_code   ec;
        if (fs::exists(path, ec)) return {};
        fs::create_directories(fs::path(path).parent_path(), ec);
        if (ec) return { ERROR_STORAGE, "cannot create " + fs::path(path).parent_path().string() + ": " + ec.message() };
        const std::string tmp = path + ".tmp-" + random_hex(8);
        int               fd  = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return { ERROR_STORAGE, "cannot write " + tmp + ": " + strerror(errno) };
        size_t off = 0;
        while (off < content.size()) {
            ssize_t n = ::write(fd, content.data() + off, content.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int err = errno;
                ::close(fd);
                ::unlink(tmp.c_str());
                return { ERROR_STORAGE, "cannot write " + tmp + ": " + strerror(err) +
                                            (err == ENOSPC ? " (the data directory is full)" : "") };
            }
            off += (size_t) n;
        }
        if (::fsync(fd) != 0 || ::close(fd) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            return { ERROR_STORAGE, "cannot sync " + tmp + ": " + strerror(err) };
        }
        if (::rename(tmp.c_str(), path.c_str()) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            return { ERROR_STORAGE, "cannot rename " + tmp + ": " + strerror(err) };
        }
        int dfd = ::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
        return {};
    }

    error read_blob(const std::string & sha, std::string & out) {
        if (memory) {
            std::lock_guard<std::mutex> lk(bmu);
            auto                        it = mem_blobs.find(sha);
            if (it == mem_blobs.end()) return { ERROR_STORAGE, "the file's content is missing from the store" };
            out = it->second;
            return {};
        }
        const std::string path = blob_path(sha);
        FILE *            f    = fopen(path.c_str(), "rb");
        if (!f) return { ERROR_STORAGE, "the file's content is missing: " + path + ": " + strerror(errno) };
        out.clear();
        char   buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
        const bool bad = ferror(f);
        fclose(f);
        if (bad) return { ERROR_STORAGE, "cannot read " + path };
        return {};
    }

    void remove_blob(const std::string & sha) {
        if (memory) {
            std::lock_guard<std::mutex> lk(bmu);
            mem_blobs.erase(sha);
            return;
        }
        std::error_code ec;
        fs::remove(blob_path(sha), ec);
    }
};

}  // namespace

int sqlite_store_latest_version() {
    return k_latest;
}

error open_sqlite_store(const sqlite_store_params & p, std::unique_ptr<store> & out) {
    if (p.path.empty()) return { ERROR_INVALID_ARGUMENT, "the store needs a database path (or :memory:)" };
    if (p.readers < 1 || p.readers > 64) return { ERROR_INVALID_ARGUMENT, "readers must be in [1, 64]" };
    if (p.busy_timeout_ms < 0 || p.busy_timeout_ms > 600000) return { ERROR_INVALID_ARGUMENT, "busy_timeout_ms must be in [0, 600000]" };
    auto st = std::make_unique<sqlite_store>(p);
    if (error e = st->open()) return e;
    out = std::move(st);
    return {};
}

}  // namespace muse
