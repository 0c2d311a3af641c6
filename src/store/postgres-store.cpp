#include "postgres-store.h"

#include "store-checks.h"
#include "store-export.h"

#include "core/random.h"
#include "core/utf8.h"

#include <hash/hash.h>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <vector>

namespace muse {

bool postgres_is_url(const std::string & db) {
    return db.rfind("postgres://", 0) == 0 || db.rfind("postgresql://", 0) == 0;
}

std::string postgres_describe(const std::string & conninfo) {
    char *             err  = nullptr;
    PQconninfoOption * opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        if (err) PQfreemem(err);
        return "PostgreSQL (an unreadable connection string)";
    }
    std::string host, port, dbname, user;
    for (PQconninfoOption * o = opts; o->keyword; ++o) {
        if (!o->val || !*o->val) continue;
        const std::string k = o->keyword;
        if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
        else if (k == "port") port = o->val;
        else if (k == "dbname") dbname = o->val;
        else if (k == "user") user = o->val;
    }
    PQconninfoFree(opts);
    std::string out = "PostgreSQL ";
    out += user.empty() ? "" : user + "@";
    out += host.empty() ? "localhost" : host;
    out += port.empty() ? "" : ":" + port;
    out += "/" + (dbname.empty() ? std::string("(default database)") : dbname);
    return out;
}

namespace {

// Forward migrations: k_migrations[i] takes the schema from version i to i + 1.
const char * const k_migrations[] = {
    // 1: everything the SQLite store has at its version 4, and the per-minute request counts
    R"sql(
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys(user_id);
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT NOT NULL DEFAULT '',
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX conversations_user ON conversations(user_id, updated_at DESC);
CREATE INDEX conversations_fts ON conversations USING gin (to_tsvector('simple', title));
CREATE TABLE items (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    type            TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT '',
    author          TEXT NOT NULL DEFAULT '',
    content         TEXT NOT NULL DEFAULT '[]',
    text            TEXT NOT NULL DEFAULT '',
    reasoning       TEXT NOT NULL DEFAULT '',
    trace           TEXT NOT NULL DEFAULT '',
    usage           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX items_user ON items(user_id);
CREATE INDEX items_fts ON items USING gin (to_tsvector('simple', left(text, 100000)));
CREATE TABLE blobs (
    sha256  TEXT PRIMARY KEY,
    content BYTEA NOT NULL
);
CREATE TABLE files (
    n          BIGSERIAL UNIQUE,
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL DEFAULT '',
    purpose    TEXT NOT NULL DEFAULT '',
    sha256     TEXT NOT NULL REFERENCES blobs(sha256),
    bytes      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX files_user ON files(user_id);
CREATE INDEX files_sha ON files(sha256);
CREATE TABLE quotas (
    user_id             TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    requests_per_minute BIGINT NOT NULL DEFAULT 0,
    tokens_per_day      BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_user TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_target ON audit(target_user);
CREATE TABLE usage_daily (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day      BIGINT NOT NULL,
    tokens   BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
CREATE TABLE usage_minute (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    minute   BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, minute)
);
CREATE TABLE responses (
    n                    BIGSERIAL UNIQUE,
    id                   TEXT PRIMARY KEY,
    user_id              TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id      TEXT NOT NULL DEFAULT '',
    previous_response_id TEXT NOT NULL DEFAULT '',
    input                TEXT NOT NULL DEFAULT '[]',
    body                 TEXT NOT NULL DEFAULT '{}',
    created_at           BIGINT NOT NULL
);
CREATE INDEX responses_user ON responses(user_id);
)sql",
};
constexpr int k_latest = (int) (sizeof(k_migrations) / sizeof(k_migrations[0]));

// The advisory lock two nodes take while they create or migrate the schema.
constexpr int64_t k_migration_lock = 0x6d7573655f736368;  // "muse_sch"

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct conn_closer {
    void operator()(PGconn * c) const { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_closer>;

struct result_closer {
    void operator()(PGresult * r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_closer>;

// One query parameter: text (the default) or binary bytes (bytea). It points at the caller's
// string, which outlives the call.
struct arg {
    const char * data   = nullptr;
    size_t       len    = 0;
    bool         binary = false;
    std::string  own;

    arg(const std::string & s) : data(s.data()), len(s.size()) {}
    arg(const char * s) : data(s), len(strlen(s)) {}
    arg(int64_t v) : own(std::to_string(v)) {}
    arg(int32_t v) : own(std::to_string(v)) {}
    static arg bytes(const std::string & s) {
        arg a(s);
        a.binary = true;
        return a;
    }
    const char * ptr() const { return own.empty() ? data : own.c_str(); }
    size_t       size() const { return own.empty() ? len : own.size(); }
};

class rows {
  public:
    result_ptr r;
    int         count() const { return r ? PQntuples(r.get()) : 0; }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r.get(), row, col), (size_t) PQgetlength(r.get(), row, col));
    }
    int64_t i64(int row, int col) const { return strtoll(PQgetvalue(r.get(), row, col), nullptr, 10); }
    bool    boolean(int row, int col) const { return PQgetvalue(r.get(), row, col)[0] == 't'; }
    int64_t affected() const { return r ? strtoll(PQcmdTuples(r.get()), nullptr, 10) : 0; }
};

// A connection that failed because the server is gone (down, restarting, the link cut).
bool lost(PGconn * c, const char * state) {
    if (PQstatus(c) == CONNECTION_BAD) return true;
    if (!state) return false;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
           strcmp(state, "57P03") == 0;
}

// libpq's messages span lines (and indent with tabs): one line for a log or an HTTP answer.
std::string one_line(const std::string & in) {
    std::string s;
    for (char c : in) {
        if (c == '\n' || c == '\t' || c == '\r') c = ' ';
        if (c == ' ' && (s.empty() || s.back() == ' ')) continue;
        s += c;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

// One connection in use by one call: its statements and how they went.
class session {
  public:
    session(PGconn * c, const std::string & where) : conn(c), where(where) {}

    PGconn *    conn;
    std::string where;                // the database as it may be printed
    int         done_ok       = 0;    // statements that succeeded in this call
    bool        broken        = false;  // the connection was lost
    std::string constraint;           // the constraint a failed statement violated
    std::string sqlstate;             // the failed statement's SQLSTATE

    // Runs sql with the arguments; rows (when given) receives what it returned.
    error exec(const char * sql, std::initializer_list<arg> args, rows * out = nullptr, const char * what = "query",
               bool binary_result = false) {
        std::vector<const char *> values;
        std::vector<int>          lengths, formats;
        for (const arg & a : args) {
            if (!a.binary && memchr(a.ptr(), 0, a.size())) {
                return { ERROR_INVALID_ARGUMENT, std::string(what) + ": a text field holds a NUL byte" };
            }
            values.push_back(a.ptr());
            lengths.push_back((int) a.size());
            formats.push_back(a.binary ? 1 : 0);
        }
        // Text parameters are read up to their NUL: a string that is not NUL-terminated at its
        // size (a view into a larger buffer) is copied first.
        std::vector<std::string> copies;
        copies.reserve(values.size());
        size_t i = 0;
        for (const arg & a : args) {
            if (!a.binary && a.own.empty() && a.data[a.len] != '\0') {
                copies.emplace_back(a.data, a.len);
                values[i] = copies.back().c_str();
            }
            ++i;
        }
        result_ptr r(PQexecParams(conn, sql, (int) values.size(), nullptr, values.data(), lengths.data(), formats.data(),
                                  binary_result ? 1 : 0));
        const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            done_ok++;
            if (out) out->r = std::move(r);
            return {};
        }
        const char * state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char * cons  = r ? PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME) : nullptr;
        sqlstate           = state ? state : "";
        constraint         = cons ? cons : "";
        const std::string msg = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn));
        if (lost(conn, state)) {
            broken = true;
            return unavailable(where, msg);
        }
        return map_error(what, msg);
    }

    // Several statements without parameters (the schema's migrations).
    error script(const char * sql, const char * what) {
        result_ptr r(PQexec(conn, sql));
        const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            done_ok++;
            return {};
        }
        const char * state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        sqlstate           = state ? state : "";
        const std::string msg = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn));
        if (lost(conn, state)) {
            broken = true;
            return unavailable(where, msg);
        }
        return map_error(what, msg);
    }

    // A statement that returns one row (else not_found).
    error one(const char * sql, std::initializer_list<arg> args, rows & out, const error & missing, const char * what = "query") {
        if (error e = exec(sql, args, &out, what)) return e;
        return out.count() > 0 ? error{} : missing;
    }

    static error unavailable(const std::string & where, const std::string & msg) {
        return { ERROR_STORAGE, "the database (" + where + ") is unavailable: " + msg + "; retry when it is back" };
    }

  private:
    error map_error(const char * what, const std::string & msg) const {
        const std::string m = std::string(what) + ": " + msg;
        if (sqlstate == "53100") return { ERROR_STORAGE, "the database's disk is full (" + m + ")" };
        if (sqlstate.rfind("53", 0) == 0) return { ERROR_STORAGE, "the database is out of resources (" + m + ")" };
        if (sqlstate == "25006" || sqlstate == "42501") {
            return { ERROR_STORAGE, "the database cannot be written (" + m + "): check the role's rights, or a read-only replica" };
        }
        if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
            return { ERROR_STORAGE, "the database is busy (" + m + "); retry" };
        }
        if (sqlstate.rfind("22", 0) == 0 || sqlstate == "54000") return { ERROR_INVALID_ARGUMENT, m };
        return { ERROR_INTERNAL, m };
    }
};

// The search query as a tsquery: each word (split as the SQLite store splits them) a quoted
// prefix, all of them required. Quotes and backslashes are escaped: the words are data.
std::string ts_query(const std::string & q) {
    std::string out, word;
    int         words = 0;
    auto        flush = [&] {
        if (!word.empty() && words < 16) {
            std::string quoted = "'";
            for (char c : word) {
                if (c == '\'' || c == '\\') quoted += c;
                quoted += c;
            }
            out += (out.empty() ? "" : " & ") + quoted + "':*";
            words++;
        }
        word.clear();
    };
    for (unsigned char c : q) {
        if (c == '"' || isspace(c) || c == '*' || c == '(' || c == ')' || c == ':' || c == '^' || c == '&' || c == '|' ||
            c == '!' || c == '<' || c == '>') {
            flush();
        } else {
            word += (char) c;
        }
    }
    flush();
    return out;
}

#define MUSE_CONV_SELECT                                                              \
    "SELECT c.id, c.user_id, c.title, c.metadata, c.created_at, c.updated_at, "      \
    "(SELECT COUNT(*) FROM items i WHERE i.conversation_id = c.id) FROM conversations c"
#define MUSE_ITEM_SELECT \
    "SELECT id, conversation_id, seq, type, role, author, content, text, reasoning, trace, usage, created_at FROM items"
#define MUSE_FILE_SELECT "SELECT id, user_id, name, mime, purpose, sha256, bytes, created_at FROM files"

class postgres_store : public store {
  public:
    explicit postgres_store(postgres_store_params p) : prm(std::move(p)), where(postgres_describe(prm.conninfo)) {}

    ~postgres_store() override = default;

    error open() {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT pg_advisory_lock($1::bigint)", { k_migration_lock }, &r, "lock the schema")) return e;
            error e = migrate(s);
            s.exec("SELECT pg_advisory_unlock($1::bigint)", { k_migration_lock }, &r, "unlock the schema");
            return e;
        });
    }

    int schema_version() const override { return version; }
    bool shared() const override { return true; }

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
        error e      = call(true, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT 1 FROM users WHERE name = $1", { name }, &r, "add user")) return e;
            if (r.count()) return { ERROR_INVALID_ARGUMENT, "the user '" + name + "' already exists" };
            error e = s.exec("INSERT INTO users (id, name, admin, created_at) VALUES ($1, $2, $3::boolean, $4::bigint)",
                             { u.id, name, admin ? "true" : "false", u.created_at }, nullptr, "add user");
            if (e && s.sqlstate == "23505") return { ERROR_INVALID_ARGUMENT, "the user '" + name + "' already exists" };
            if (e) return e;
            if (!digest.empty()) {
                if (error e = insert_key(s, u.id, digest)) return e;
            }
            return insert_audit(s, "cli", "user_add", u.id, name + (admin ? " (admin)" : ""));
        });
        if (!e) out = u;
        return e;
    }

    error add_key(const std::string & user_id, const std::string & digest) override {
        return call(true, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            if (error e = insert_key(s, user_id, digest)) return e;
            return insert_audit(s, "cli", "key_add", user_id, "");
        });
    }

    error find_user_by_name(const std::string & name, user_record & out) override {
        return find_user("SELECT id, name, admin, created_at FROM users WHERE name = $1", name, out, "no user named '" + name + "'");
    }

    error find_user_by_key(const std::string & digest, user_record & out) override {
        return find_user("SELECT u.id, u.name, u.admin, u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id "
                         "WHERE k.digest = $1",
                         digest, out, "no user has this key");
    }

    error get_user(const std::string & user_id, user_record & out) override {
        return find_user("SELECT id, name, admin, created_at FROM users WHERE id = $1", user_id, out, "no such user");
    }

    error list_users(std::vector<user_record> & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT id, name, admin, created_at FROM users ORDER BY name COLLATE \"C\"", {}, &r, "list users")) {
                return e;
            }
            out.clear();
            for (int i = 0; i < r.count(); ++i) out.push_back(user_of(r, i));
            return {};
        });
    }

    error count_keys(int64_t & n) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT COUNT(*) FROM api_keys", {}, &r, "count keys")) return e;
            n = r.i64(0, 0);
            return {};
        });
    }

    error erase_user(const std::string & user_id, const std::string & actor) override {
        std::vector<std::string> shas;
        error                    e = call(true, [&](session & s) -> error {
            shas.clear();
            if (error e = lock_user(s, user_id)) return e;
            rows r;
            if (error e = s.exec("SELECT DISTINCT sha256 FROM files WHERE user_id = $1", { user_id }, &r, "erase user")) return e;
            for (int i = 0; i < r.count(); ++i) shas.push_back(r.text(i, 0));
            for (const char * sql : { "DELETE FROM audit WHERE target_user = $1", "DELETE FROM users WHERE id = $1" }) {
                if (error e = s.exec(sql, { user_id }, nullptr, "erase user")) return e;
            }
            return insert_audit(s, actor, "user_erase", user_id, "");
        });
        if (e) return e;
        free_blobs(shas);
        vacuum("VACUUM users, api_keys, conversations, items, files, blobs, quotas, audit, usage_daily, usage_minute, responses");
        return {};
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
        error e         = call(true, [&](session & s) -> error {
            if (error e = lock_user(s, user_id)) return e;
            if (error e = next_touch(s, user_id, c.created_at)) return e;
            c.updated_at = c.created_at;
            return s.exec("INSERT INTO conversations (id, user_id, title, metadata, created_at, updated_at) "
                                  "VALUES ($1, $2, $3, $4, $5::bigint, $5::bigint)",
                                  { c.id, user_id, title, meta, c.created_at }, nullptr, "create conversation");
        });
        if (!e) out = c;
        return e;
    }

    error get_conversation(const std::string & user_id, const std::string & id, conversation_record & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.one(MUSE_CONV_SELECT " WHERE c.id = $1 AND c.user_id = $2", { id, user_id }, r,
                                not_found("conversation", id), "get conversation")) {
                return e;
            }
            out = conv_of(r, 0);
            return {};
        });
    }

    error list_conversations(const std::string & user_id, int32_t limit, int64_t before,
                             std::vector<conversation_record> & out) override {
        if (error e = check_limit(limit)) return e;
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec(MUSE_CONV_SELECT " WHERE c.user_id = $1 AND ($2::bigint <= 0 OR c.updated_at < $2::bigint) "
                                                  "ORDER BY c.updated_at DESC, c.id DESC LIMIT $3::bigint",
                                 { user_id, before, limit }, &r, "list conversations")) {
                return e;
            }
            out.clear();
            for (int i = 0; i < r.count(); ++i) out.push_back(conv_of(r, i));
            return {};
        });
    }

    error update_conversation(const std::string & user_id, const std::string & id, const std::string & title,
                              const std::string & metadata_json) override {
        if (error e = check_title(title)) return e;
        const std::string meta = metadata_json.empty() ? "{}" : metadata_json;
        if (error e = check_json(meta, true, "metadata", k_store_max_metadata)) return e;
        return call(true, [&](session & s) -> error {
            rows r;
            // A rename is not activity: the list's order (updated_at) stays as it was.
            if (error e = s.exec("UPDATE conversations SET title = $1, metadata = $2 WHERE id = $3 AND user_id = $4",
                                 { title, meta, id, user_id }, &r, "update conversation")) {
                return e;
            }
            return r.affected() > 0 ? error{} : not_found("conversation", id);
        });
    }

    error delete_conversation(const std::string & user_id, const std::string & id) override {
        error e = call(true, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("DELETE FROM conversations WHERE id = $1 AND user_id = $2", { id, user_id }, &r,
                                 "delete conversation")) {
                return e;
            }
            return r.affected() > 0 ? error{} : not_found("conversation", id);
        });
        return e;
    }

    // --- items ------------------------------------------------------------------------------

    error append_items(const std::string & user_id, const std::string & conversation_id, std::vector<item_record> & items) override {
        if (items.empty()) return {};
        if (error e = check_new_items(items)) return e;
        const int64_t            t = now_ms();
        std::vector<item_record> filled;
        error                    e = call(true, [&](session & s) -> error {
            filled = items;
            // The user's row lock orders every append and touch of the user, on every node.
            if (error e = lock_user(s, user_id)) return e;
            if (error e = require_conversation(s, user_id, conversation_id)) return e;
            rows r;
            if (error e = s.exec("SELECT COALESCE(MAX(seq), 0) FROM items WHERE conversation_id = $1", { conversation_id }, &r,
                                 "append items")) {
                return e;
            }
            int64_t seq = r.i64(0, 0);
            for (item_record & it : filled) {
                if (it.id.empty()) {
                    const char * prefix = it.type == "function_call" ? "fc_" : it.type == "function_call_output" ? "fco_"
                                                                             : it.type == "reasoning"            ? "rs_"
                                                                                                                 : "msg_";
                    it.id = prefix + random_hex(48);
                }
                it.conversation_id = conversation_id;
                it.seq             = ++seq;
                // PostgreSQL's text holds no NUL: in the plain text and reasoning (what search
                // and display read) one becomes U+FFFD; the JSON fields escape it anyway.
                for (std::string * t : { &it.text, &it.reasoning }) {
                    for (size_t at; (at = t->find('\0')) != std::string::npos;) t->replace(at, 1, "\xEF\xBF\xBD");
                }
                it.created_at      = t;
                if (it.content_json.empty()) it.content_json = "[]";
                error e = s.exec("INSERT INTO items (id, conversation_id, user_id, seq, type, role, author, content, text, reasoning, "
                                 "trace, usage, created_at) VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, $8, $9, $10, $11, $12, $13::bigint)",
                                 { it.id, conversation_id, user_id, it.seq, it.type, it.role, it.author, it.content_json, it.text,
                                   it.reasoning, it.trace_json, it.usage_json, t },
                                 nullptr, "append items");
                if (e && s.sqlstate == "23505") return { ERROR_INVALID_ARGUMENT, "an item with the id '" + it.id + "' already exists" };
                if (e) return e;
            }
            int64_t touch = 0;
            if (error e = next_touch(s, user_id, touch)) return e;
            return s.exec("UPDATE conversations SET updated_at = $1::bigint WHERE id = $2", { touch, conversation_id }, nullptr,
                          "append items");
        });
        if (!e) items = std::move(filled);
        return e;
    }

    error list_items(const std::string & user_id, const std::string & conversation_id, int64_t after_seq, int32_t limit,
                     std::vector<item_record> & out, bool newest_first) override {
        if (error e = check_limit(limit)) return e;
        return call(false, [&](session & s) -> error {
            out.clear();
            if (error e = require_conversation(s, user_id, conversation_id)) return e;
            rows r;
            if (error e = s.exec(newest_first ? MUSE_ITEM_SELECT " WHERE conversation_id = $1 AND ($2::bigint <= 0 OR seq < $2::bigint) "
                                                                 "ORDER BY seq DESC LIMIT $3::bigint"
                                              : MUSE_ITEM_SELECT " WHERE conversation_id = $1 AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint",
                                 { conversation_id, after_seq, limit }, &r, "list items")) {
                return e;
            }
            for (int i = 0; i < r.count(); ++i) out.push_back(item_of(r, i));
            return {};
        });
    }

    error get_item(const std::string & user_id, const std::string & item_id, item_record & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.one(MUSE_ITEM_SELECT " WHERE id = $1 AND user_id = $2", { item_id, user_id }, r, not_found("item", item_id),
                                "get item")) {
                return e;
            }
            out = item_of(r, 0);
            return {};
        });
    }

    error delete_item(const std::string & user_id, const std::string & item_id) override {
        return call(true, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("DELETE FROM items WHERE id = $1 AND user_id = $2", { item_id, user_id }, &r, "delete item")) return e;
            return r.affected() > 0 ? error{} : not_found("item", item_id);
        });
    }

    error search(const std::string & user_id, const std::string & query, int32_t limit, std::vector<search_hit> & out) override {
        if (error e = check_limit(limit)) return e;
        if (query.size() > 256) {
            return { ERROR_INVALID_ARGUMENT, "a search query is at most 256 bytes, got " + std::to_string(query.size()) };
        }
        if (!utf8_valid(query)) return { ERROR_INVALID_ARGUMENT, "the search query is not valid UTF-8" };
        const std::string q = ts_query(query);
        out.clear();
        if (q.empty()) return {};
        // Headlines only for the hits kept (ts_headline reads the whole text).
        static const char * sql =
            "WITH q AS (SELECT to_tsquery('simple', $2) AS q), "
            "hits AS ("
            "  SELECT c.id AS conversation_id, '' AS item_id, c.title AS body, "
            "         ts_rank(to_tsvector('simple', c.title), q.q) AS rank, c.updated_at, 0::bigint AS seq "
            "  FROM conversations c, q WHERE c.user_id = $1 AND to_tsvector('simple', c.title) @@ q.q "
            "  UNION ALL "
            "  SELECT i.conversation_id, i.id, i.text, ts_rank(to_tsvector('simple', left(i.text, 100000)), q.q), c.updated_at, i.seq "
            "  FROM items i JOIN conversations c ON c.id = i.conversation_id, q "
            "  WHERE i.user_id = $1 AND to_tsvector('simple', left(i.text, 100000)) @@ q.q "
            "  ORDER BY rank DESC, updated_at DESC, seq LIMIT $3::bigint) "
            "SELECT h.conversation_id, h.item_id, c.title, "
            "       ts_headline('simple', left(h.body, 100000), q.q, "
            "                   'StartSel=[, StopSel=], MaxWords=12, MinWords=4, ShortWord=0, MaxFragments=1, FragmentDelimiter=...') "
            "FROM hits h JOIN conversations c ON c.id = h.conversation_id, q "
            "ORDER BY h.rank DESC, h.updated_at DESC, h.seq";
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec(sql, { user_id, q, limit }, &r, "search")) return e;
            for (int i = 0; i < r.count(); ++i) out.push_back({ r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3) });
            return {};
        });
    }

    // --- files ------------------------------------------------------------------------------

    error put_file(const std::string & user_id, const std::string & name, const std::string & mime, const std::string & purpose,
                   const std::string & content, file_record & out) override {
        file_record f;
        if (error e = new_file_record(user_id, name, mime, purpose, content, now_ms(), f)) return e;
        error e      = call(true, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            // The blob row is locked (or inserted) first: a concurrent delete of its last other
            // reference cannot free it under this file.
            rows r;
            if (error e = s.exec("SELECT 1 FROM blobs WHERE sha256 = $1 FOR SHARE", { f.sha256 }, &r, "put file")) return e;
            if (!r.count()) {
                if (error e = s.exec("INSERT INTO blobs (sha256, content) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                                     { f.sha256, arg::bytes(content) }, nullptr, "put file")) {
                    return e;
                }
                if (error e = s.exec("SELECT 1 FROM blobs WHERE sha256 = $1 FOR SHARE", { f.sha256 }, &r, "put file")) return e;
            }
            return s.exec("INSERT INTO files (id, user_id, name, mime, purpose, sha256, bytes, created_at) "
                               "VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8::bigint)",
                          { f.id, user_id, f.name, f.mime, f.purpose, f.sha256, f.bytes, f.created_at }, nullptr, "put file");
        });
        if (e) return e;
        out = f;
        return {};
    }

    error get_file(const std::string & user_id, const std::string & id, file_record & out, std::string * content) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.one(MUSE_FILE_SELECT " WHERE id = $1 AND user_id = $2", { id, user_id }, r, not_found("file", id), "get file")) {
                return e;
            }
            out = file_of(r, 0);
            if (!content) return {};
            rows b;
            if (error e = s.exec("SELECT content FROM blobs WHERE sha256 = $1", { out.sha256 }, &b, "get file", true)) return e;
            if (!b.count()) return { ERROR_STORAGE, "the file's content is missing from the database" };
            content->assign(PQgetvalue(b.r.get(), 0, 0), (size_t) PQgetlength(b.r.get(), 0, 0));
            return {};
        });
    }

    error list_files(const std::string & user_id, std::vector<file_record> & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec(MUSE_FILE_SELECT " WHERE user_id = $1 ORDER BY created_at, n", { user_id }, &r, "list files")) return e;
            out.clear();
            for (int i = 0; i < r.count(); ++i) out.push_back(file_of(r, i));
            return {};
        });
    }

    error file_totals(int64_t & files, int64_t & bytes) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files", {}, &r, "file totals")) return e;
            files = r.i64(0, 0);
            bytes = r.i64(0, 1);
            return {};
        });
    }

    error delete_file(const std::string & user_id, const std::string & id) override {
        std::string sha;
        error       e = call(true, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("DELETE FROM files WHERE id = $1 AND user_id = $2 RETURNING sha256", { id, user_id }, &r, "delete file")) {
                return e;
            }
            if (!r.count()) return not_found("file", id);
            sha = r.text(0, 0);
            return {};
        });
        if (e) return e;
        free_blobs({ sha });
        return {};
    }

    // --- quotas and audit -------------------------------------------------------------------

    error set_quota(const std::string & user_id, const quota_record & q, const std::string & actor) override {
        if (q.requests_per_minute < 0 || q.requests_per_minute > 1000000 || q.tokens_per_day < 0 ||
            q.tokens_per_day > (int64_t) 1e12) {
            return { ERROR_INVALID_ARGUMENT, "quotas: requests_per_minute in [0, 1000000], tokens_per_day in [0, 1e12] "
                                             "(0 = unlimited)" };
        }
        return call(true, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            if (error e = s.exec("INSERT INTO quotas (user_id, requests_per_minute, tokens_per_day) VALUES ($1, $2::bigint, $3::bigint) "
                                 "ON CONFLICT (user_id) DO UPDATE SET requests_per_minute = $2::bigint, tokens_per_day = $3::bigint",
                                 { user_id, q.requests_per_minute, q.tokens_per_day }, nullptr, "set quota")) {
                return e;
            }
            return insert_audit(s, actor, "quota_set", user_id,
                                std::to_string(q.requests_per_minute) + " requests/min, " + std::to_string(q.tokens_per_day) +
                                    " tokens/day");
        });
    }

    error get_quota(const std::string & user_id, quota_record & out) override {
        return call(false, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            out = {};
            rows r;
            if (error e = s.exec("SELECT requests_per_minute, tokens_per_day FROM quotas WHERE user_id = $1", { user_id }, &r, "get quota")) {
                return e;
            }
            if (r.count()) {
                out.requests_per_minute = r.i64(0, 0);
                out.tokens_per_day      = r.i64(0, 1);
            }
            return {};
        });
    }

    error take_request(const std::string & user_id, int64_t minute, int64_t limit, bool & allowed) override {
        if (minute < 0 || limit < 1 || limit > 1000000) return { ERROR_INVALID_ARGUMENT, "take_request: minute or limit out of range" };
        allowed = false;
        return call(true, [&](session & s) -> error {
            rows r;
            // Counted only while under the limit: every node reads and adds in one statement.
            if (error e = s.exec("INSERT INTO usage_minute (user_id, minute, requests) VALUES ($1, $2::bigint, 1) "
                                 "ON CONFLICT (user_id, minute) DO UPDATE SET requests = usage_minute.requests + 1 "
                                 "WHERE usage_minute.requests < $3::bigint RETURNING requests",
                                 { user_id, minute, limit }, &r, "count request")) {
                if (s.sqlstate == "23503") return { ERROR_NOT_FOUND, "no such user" };
                return e;
            }
            allowed = r.count() > 0;
            return s.exec("DELETE FROM usage_minute WHERE user_id = $1 AND minute < $2::bigint", { user_id, minute - 1 }, nullptr,
                          "count request");
        });
    }

    error put_response(const std::string & user_id, response_record & rec) override {
        if (rec.input_json.size() + rec.body_json.size() > k_store_max_item_bytes) {
            return { ERROR_INVALID_ARGUMENT, "a response is at most " + std::to_string(k_store_max_item_bytes) + " bytes of JSON" };
        }
        if (error e = check_json(rec.input_json, false, "input", k_store_max_item_bytes)) return e;
        if (error e = check_json(rec.body_json, true, "response", k_store_max_item_bytes)) return e;
        rec.user_id    = user_id;
        rec.created_at = now_ms();
        return call(true, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            error e = s.exec("INSERT INTO responses (id, user_id, conversation_id, previous_response_id, input, body, created_at) "
                             "VALUES ($1, $2, $3, $4, $5, $6, $7::bigint)",
                             { rec.id, user_id, rec.conversation_id, rec.previous_response_id, rec.input_json, rec.body_json,
                               rec.created_at },
                             nullptr, "store response");
            if (e && s.sqlstate == "23505") return { ERROR_INVALID_ARGUMENT, "a response with the id '" + utf8_head(rec.id, 80) + "' already exists" };
            return e;
        });
    }

    error get_response(const std::string & user_id, const std::string & id, response_record & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.one("SELECT id, user_id, conversation_id, previous_response_id, input, body, created_at FROM responses "
                                "WHERE id = $1 AND user_id = $2",
                                { id, user_id }, r, not_found("response", id), "get response")) {
                return e;
            }
            out = { r.text(0, 0), r.text(0, 1), r.text(0, 2), r.text(0, 3), r.text(0, 4), r.text(0, 5), r.i64(0, 6) };
            return {};
        });
    }

    error delete_response(const std::string & user_id, const std::string & id) override {
        error e = call(true, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("DELETE FROM responses WHERE id = $1 AND user_id = $2", { id, user_id }, &r, "delete response")) return e;
            return r.affected() > 0 ? error{} : not_found("response", id);
        });
        return e;
    }

    error add_usage(const std::string & user_id, int64_t day, int64_t tokens, int64_t requests) override {
        if (day < 0 || day > 1000000 || tokens < 0 || tokens > (int64_t) 1e12 || requests < 0 || requests > 1000000) {
            return { ERROR_INVALID_ARGUMENT, "usage: day, tokens or requests out of range" };
        }
        return call(true, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            return s.exec("INSERT INTO usage_daily (user_id, day, tokens, requests) VALUES ($1, $2::bigint, $3::bigint, $4::bigint) "
                          "ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage_daily.tokens + $3::bigint, "
                          "requests = usage_daily.requests + $4::bigint",
                          { user_id, day, tokens, requests }, nullptr, "add usage");
        });
    }

    error get_usage(const std::string & user_id, int64_t day, int64_t & tokens, int64_t & requests) override {
        return call(false, [&](session & s) -> error {
            if (error e = require_user(s, user_id)) return e;
            tokens = requests = 0;
            rows r;
            if (error e = s.exec("SELECT tokens, requests FROM usage_daily WHERE user_id = $1 AND day = $2::bigint", { user_id, day },
                                 &r, "get usage")) {
                return e;
            }
            if (r.count()) {
                tokens   = r.i64(0, 0);
                requests = r.i64(0, 1);
            }
            return {};
        });
    }

    error audit(const std::string & actor, const std::string & action, const std::string & target_user,
                const std::string & detail) override {
        return call(true, [&](session & s) { return insert_audit(s, actor, action, target_user, detail); });
    }

    error list_audit(const std::string & user_id, std::vector<audit_record> & out) override {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT id, at, actor, action, target_user, detail FROM audit WHERE $1 = '' OR target_user = $1 ORDER BY id",
                                 { user_id }, &r, "list audit")) {
                return e;
            }
            out.clear();
            for (int i = 0; i < r.count(); ++i) {
                out.push_back({ r.i64(i, 0), r.i64(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), r.text(i, 5) });
            }
            return {};
        });
    }

    error export_user(const std::string & user_id, std::string & json_out) override {
        using ojson = nlohmann::ordered_json;
        ojson doc;
        if (error e = export_user_common(*this, user_id, now_ms(), doc)) return e;
        ojson usage = ojson::array(), resps = ojson::array();
        error e     = call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.exec("SELECT day, tokens, requests FROM usage_daily WHERE user_id = $1 ORDER BY day", { user_id }, &r, "usage")) {
                return e;
            }
            for (int i = 0; i < r.count(); ++i) {
                usage.push_back({ { "day", r.i64(i, 0) }, { "tokens", r.i64(i, 1) }, { "requests", r.i64(i, 2) } });
            }
            if (error e = s.exec("SELECT id, conversation_id, previous_response_id, input, body, created_at FROM responses "
                                 "WHERE user_id = $1 ORDER BY created_at, n",
                                 { user_id }, &r, "responses")) {
                return e;
            }
            for (int i = 0; i < r.count(); ++i) {
                resps.push_back({ { "id", r.text(i, 0) }, { "conversation_id", r.text(i, 1) }, { "previous_response_id", r.text(i, 2) },
                                  { "input", ojson::parse(r.text(i, 3), nullptr, false) },
                                  { "response", ojson::parse(r.text(i, 4), nullptr, false) }, { "created_at", r.i64(i, 5) } });
            }
            return {};
        });
        if (e) return e;
        doc["usage"]     = usage;
        doc["responses"] = resps;
        if (error e = export_user_audit(*this, user_id, doc)) return e;
        json_out     = doc.dump(2, ' ', false, ojson::error_handler_t::replace);
        return {};
    }

  private:
    postgres_store_params prm;
    const std::string     where;
    int                   version = 0;

    std::mutex              mu;
    std::condition_variable freed;
    std::vector<conn_ptr>   idle;
    int32_t                 open_conns = 0;

    error connect(conn_ptr & out) {
        const std::string timeout = std::to_string(prm.connect_timeout_s);
        // Later keywords override earlier ones: the conninfo's own connect_timeout wins.
        // TCP keepalives: a database behind a cut network is found dead in about a minute,
        // not after the system's TCP timeout.
        const char * keys[] = { "connect_timeout", "application_name", "client_encoding", "keepalives", "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "dbname", nullptr };
        const char * vals[] = { timeout.c_str(), "muse", "UTF8", "1", "30", "10", "3", prm.conninfo.c_str(), nullptr };
        conn_ptr     c(PQconnectdbParams(keys, vals, 1));
        if (!c) return { ERROR_STORAGE, "cannot connect to " + where + ": out of memory" };
        if (PQstatus(c.get()) != CONNECTION_OK) {
            return { ERROR_STORAGE, "cannot connect to " + where + ": " + one_line(PQerrorMessage(c.get())) };
        }
        // Notices (an empty search word, a VACUUM skipped) are not for the server's log.
        PQsetNoticeProcessor(c.get(), [](void *, const char *) {}, nullptr);
        out = std::move(c);
        return {};
    }

    // A connection from the pool (or a new one), waiting while all are in use.
    error acquire(conn_ptr & out, bool & fresh) {
        fresh = false;
        {
            std::unique_lock<std::mutex> lk(mu);
            if (!freed.wait_for(lk, std::chrono::milliseconds(prm.pool_wait_ms),
                                [&] { return !idle.empty() || open_conns < prm.connections; })) {
                return { ERROR_STORAGE, "all " + std::to_string(prm.connections) + " connections to " + where +
                                            " stayed busy for " + std::to_string(prm.pool_wait_ms / 1000) + " s" };
            }
            if (!idle.empty()) {
                out = std::move(idle.back());
                idle.pop_back();
                if (PQstatus(out.get()) == CONNECTION_OK) return {};
                out.reset();
                open_conns--;
            }
            open_conns++;
        }
        fresh   = true;
        error e = connect(out);
        if (e) {
            std::lock_guard<std::mutex> lk(mu);
            open_conns--;
            freed.notify_one();
        }
        return e;
    }

    void release(conn_ptr c, bool broken) {
        std::lock_guard<std::mutex> lk(mu);
        if (broken || PQstatus(c.get()) != CONNECTION_OK || PQtransactionStatus(c.get()) != PQTRANS_IDLE) {
            c.reset();
            open_conns--;
            // The server went away: the idle connections are dead too.
            open_conns -= (int32_t) idle.size();
            idle.clear();
        } else {
            idle.push_back(std::move(c));
        }
        freed.notify_all();
    }

    // Runs fn on a pooled connection, in a transaction when txn. A connection found lost
    // before anything of the call ran is replaced and the call run once more.
    error call(bool txn, const std::function<error(session &)> & fn) {
        for (int attempt = 0;; ++attempt) {
            conn_ptr c;
            bool     fresh = false;
            if (error e = acquire(c, fresh)) return e;
            session s(c.get(), where);
            error   e;
            if (txn) e = s.exec("BEGIN", {}, nullptr, "begin");
            if (!e) {
                try {
                    e = fn(s);
                } catch (const std::exception & ex) {
                    e = { ERROR_INTERNAL, std::string("store: ") + ex.what() };
                }
                if (txn && !s.broken) {
                    if (!e) {
                        e = s.exec("COMMIT", {}, nullptr, "commit");
                    } else {
                        session rb(c.get(), where);
                        rb.exec("ROLLBACK", {}, nullptr, "rollback");
                        s.broken = rb.broken;
                    }
                }
            }
            const bool retry = s.broken && s.done_ok == 0 && !fresh && attempt == 0;
            release(std::move(c), s.broken);
            if (!retry) return e;
        }
    }

    // VACUUM runs outside a transaction; a role that may not is not an error (autovacuum
    // reclaims the rows later).
    void vacuum(const char * sql) {
        call(false, [&](session & s) {
            s.exec(sql, {}, nullptr, "vacuum");
            return error{};
        });
    }

    // Deletes the blobs no file references any more. A file that took a reference meanwhile
    // keeps its blob (the foreign key refuses the delete).
    void free_blobs(const std::vector<std::string> & shas) {
        for (const std::string & sha : shas) {
            call(false, [&](session & s) {
                s.exec("DELETE FROM blobs WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM files WHERE sha256 = $1)", { sha }, nullptr,
                       "free blob");
                return error{};
            });
        }
        if (!shas.empty()) vacuum("VACUUM blobs, files");
    }

    error migrate(session & s) {
        if (error e = s.exec("CREATE TABLE IF NOT EXISTS muse_schema (version INTEGER NOT NULL)", {}, nullptr, "create muse_schema")) {
            return e;
        }
        rows r;
        if (error e = s.exec("SELECT version FROM muse_schema", {}, &r, "read the schema version")) return e;
        if (!r.count()) {
            if (error e = s.exec("INSERT INTO muse_schema (version) VALUES (0)", {}, nullptr, "schema version")) return e;
            version = 0;
        } else {
            version = (int) r.i64(0, 0);
        }
        if (version > k_latest) {
            return { ERROR_STORAGE, where + " has schema version " + std::to_string(version) + ", newer than this Muse (" +
                                        std::to_string(k_latest) + "): use a newer Muse, or another database" };
        }
        while (version < k_latest) {
            if (error e = s.exec("BEGIN", {}, nullptr, "migrate")) return e;
            error e = s.script(k_migrations[version], "migrate");
            if (!e) e = s.exec("UPDATE muse_schema SET version = $1::integer", { (int32_t) (version + 1) }, nullptr, "migrate");
            if (!e) e = s.exec("COMMIT", {}, nullptr, "migrate");
            if (e) {
                s.exec("ROLLBACK", {}, nullptr, "migrate");
                return { e.code == ERROR_INTERNAL ? ERROR_STORAGE : e.code,
                         "migrating " + where + " to schema version " + std::to_string(version + 1) + ": " + e.message };
            }
            version++;
        }
        return {};
    }

    // --- helpers on a session

    static user_record user_of(const rows & r, int i) { return { r.text(i, 0), r.text(i, 1), r.boolean(i, 2), r.i64(i, 3) }; }

    static conversation_record conv_of(const rows & r, int i) {
        conversation_record c;
        c.id            = r.text(i, 0);
        c.user_id       = r.text(i, 1);
        c.title         = r.text(i, 2);
        c.metadata_json = r.text(i, 3);
        c.created_at    = r.i64(i, 4);
        c.updated_at    = r.i64(i, 5);
        c.items         = r.i64(i, 6);
        return c;
    }

    static item_record item_of(const rows & r, int i) {
        item_record it;
        it.id              = r.text(i, 0);
        it.conversation_id = r.text(i, 1);
        it.seq             = r.i64(i, 2);
        it.type            = r.text(i, 3);
        it.role            = r.text(i, 4);
        it.author          = r.text(i, 5);
        it.content_json    = r.text(i, 6);
        it.text            = r.text(i, 7);
        it.reasoning       = r.text(i, 8);
        it.trace_json      = r.text(i, 9);
        it.usage_json      = r.text(i, 10);
        it.created_at      = r.i64(i, 11);
        return it;
    }

    static file_record file_of(const rows & r, int i) {
        return { r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), r.text(i, 5), r.i64(i, 6), r.i64(i, 7) };
    }

    static error not_found(const char * what, const std::string & id) {
        return { ERROR_NOT_FOUND, std::string("no ") + what + " with the id '" + utf8_head(id, 80) + "'" };
    }

    error find_user(const char * sql, const std::string & key, user_record & out, const std::string & missing) {
        return call(false, [&](session & s) -> error {
            rows r;
            if (error e = s.one(sql, { key }, r, { ERROR_NOT_FOUND, missing }, "find user")) return e;
            out = user_of(r, 0);
            return {};
        });
    }

    static error require_user(session & s, const std::string & user_id) {
        rows r;
        return s.one("SELECT 1 FROM users WHERE id = $1", { user_id }, r, { ERROR_NOT_FOUND, "no such user" }, "find user");
    }

    // The user's row, locked to the end of the transaction: every write that orders the user's
    // conversations (updated_at) or items (seq) takes it first, on every node.
    static error lock_user(session & s, const std::string & user_id) {
        rows r;
        return s.one("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", { user_id }, r, { ERROR_NOT_FOUND, "no such user" },
                     "lock user");
    }

    static error require_conversation(session & s, const std::string & user_id, const std::string & id) {
        rows r;
        return s.one("SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2", { id, user_id }, r, not_found("conversation", id),
                     "find conversation");
    }

    // updated_at never repeats within a user: later than every other of the user's (the
    // caller holds the user's row lock, so two nodes cannot pick the same value).
    static error next_touch(session & s, const std::string & user_id, int64_t & out) {
        rows r;
        if (error e = s.exec("SELECT GREATEST($2::bigint, COALESCE(MAX(updated_at), 0) + 1) FROM conversations WHERE user_id = $1",
                             { user_id, now_ms() }, &r, "touch")) {
            return e;
        }
        out = r.i64(0, 0);
        return {};
    }

    static error insert_key(session & s, const std::string & user_id, const std::string & digest) {
        if (digest.rfind("sha256:", 0) != 0 || digest.size() != 7 + 64) {
            return { ERROR_INVALID_ARGUMENT, "a key digest is sha256: and 64 hex digits" };
        }
        error e = s.exec("INSERT INTO api_keys (digest, user_id, created_at) VALUES ($1, $2, $3::bigint)", { digest, user_id, now_ms() },
                         nullptr, "add key");
        if (e && s.sqlstate == "23505") return { ERROR_INVALID_ARGUMENT, "this key is already in use" };
        return e;
    }

    static error insert_audit(session & s, const std::string & actor, const std::string & action, const std::string & target,
                              const std::string & detail) {
        return s.exec("INSERT INTO audit (at, actor, action, target_user, detail) VALUES ($1::bigint, $2, $3, $4, $5)",
                      { now_ms(), utf8_head(actor, 128), utf8_head(action, 64), target, utf8_head(detail, 1024) }, nullptr, "audit");
    }

};

}  // namespace

int postgres_store_latest_version() {
    return k_latest;
}

error open_postgres_store(const postgres_store_params & p, std::unique_ptr<store> & out) {
    if (p.conninfo.empty()) return { ERROR_INVALID_ARGUMENT, "the PostgreSQL store needs a connection string (postgres://...)" };
    if (p.conninfo.size() > 4096) return { ERROR_INVALID_ARGUMENT, "the PostgreSQL connection string is over 4096 bytes" };
    if (p.connections < 1 || p.connections > 64) return { ERROR_INVALID_ARGUMENT, "connections must be in [1, 64]" };
    if (p.connect_timeout_s < 1 || p.connect_timeout_s > 600) return { ERROR_INVALID_ARGUMENT, "connect_timeout_s must be in [1, 600]" };
    if (p.pool_wait_ms < 0 || p.pool_wait_ms > 600000) return { ERROR_INVALID_ARGUMENT, "pool_wait_ms must be in [0, 600000]" };
    char * err = nullptr;
    PQconninfoOption * opts = PQconninfoParse(p.conninfo.c_str(), &err);
    if (!opts) {
        std::string msg = err ? one_line(err) : "out of memory";
        if (err) PQfreemem(err);
        return { ERROR_INVALID_ARGUMENT, "the PostgreSQL connection string is not valid: " + msg };
    }
    PQconninfoFree(opts);
    auto st = std::make_unique<postgres_store>(p);
    if (error e = st->open()) return e;
    out = std::move(st);
    return {};
}

}  // namespace muse
