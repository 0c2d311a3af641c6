#pragma once
// The state layer: users and their API-key digests, conversations and their items, uploaded
// files, quotas, and an audit log of administrative actions. One interface, implemented on
// SQLite (store/sqlite-store.h, the default) and on PostgreSQL (store/postgres-store.h, for
// several nodes sharing one state); both run the same test suite (tests/test-store.cpp).
//
//     std::unique_ptr<muse::store> st;
//     if (muse::error e = muse::open_sqlite_store({ .path = "/var/lib/muse/muse.db" }, st)) { ... }
//     muse::user_record alice;
//     st->add_user("alice", false, muse::key_digest(key), alice);
//     muse::conversation_record c;
//     st->create_conversation(alice.id, "Trip", "{}", c);
//     std::vector<muse::item_record> turn = { user_message, assistant_message };
//     st->append_items(alice.id, c.id, turn);  // ids, seq and times are filled in
//
// Privacy: every call that reads or changes a user's data takes the user's id, and an id that
// belongs to another user is ERROR_NOT_FOUND, exactly as an id that does not exist: other
// users' ids are never confirmed. Erasing (erase_user, delete_conversation, delete_file)
// removes the rows and every copy the database keeps (see the implementation).
//
// Errors: ERROR_NOT_FOUND (no such id for this user), ERROR_INVALID_ARGUMENT (a bad name,
// a duplicate user, a field over its cap: the message names it), ERROR_STORAGE (the disk is
// full, the data directory is read-only or damaged: nothing stored before is lost).
//
// Thread safety: every method may be called from any thread; writes are serialised by the
// implementation, reads run concurrently.

#include "core/error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse {

struct user_record {
    std::string id;    // "user_" + 24 hex digits
    std::string name;  // 1-64 of [A-Za-z0-9_.-], unique
    bool        admin      = false;
    int64_t     created_at = 0;  // Unix milliseconds, as every time the store keeps
};

struct conversation_record {
    std::string id;  // "conv_" + 48 hex digits
    std::string user_id;
    std::string title;          // at most 512 bytes
    std::string metadata_json;  // a JSON object, at most 16 KiB ("{}" when none)
    int64_t     created_at = 0, updated_at = 0;  // updated_at never repeats within a user
    int64_t     items      = 0;  // how many items it holds (filled by reads)
};

// One entry of a conversation: a message (role user, assistant, system or developer), or a
// function call / its output, as OpenAI's Conversations API types them.
struct item_record {
    std::string id;  // "msg_" / "fc_" / "fco_" + 48 hex digits; filled by append_items
    std::string conversation_id;
    int64_t     seq = 0;   // position in the conversation, from 1; filled by append_items
    std::string type;      // message, function_call, function_call_output, reasoning
    std::string role;      // messages: user, assistant, system, developer
    std::string author;    // who wrote it (a user name, "muse", a model id)
    std::string content_json = "[]";  // the content parts (OpenAI's shapes), a JSON array
    std::string text;                 // the plain text of the parts: what search finds
    std::string reasoning;            // the assistant's reasoning, when it had some
    std::string trace_json;           // Muse's trace of the turn (agents, vote...), or empty
    std::string usage_json;           // token usage of the turn, or empty
    int64_t     created_at = 0;       // filled by append_items
};

struct file_record {
    std::string id;  // "file-" + 24 hex digits
    std::string user_id;
    std::string name;  // the uploaded name, at most 255 bytes
    std::string mime;     // image/png, text/csv, ...
    std::string purpose;  // what the uploader said it is for (OpenAI's purpose), at most 64 bytes
    std::string sha256;   // of the content: the blob's name
    int64_t     bytes      = 0;
    int64_t     created_at = 0;
};

// 0 = unlimited.
struct quota_record {
    int64_t requests_per_minute = 0;
    int64_t tokens_per_day      = 0;
};

struct audit_record {
    int64_t     id = 0;
    int64_t     at = 0;
    std::string actor;        // who did it: a user name, or "cli"
    std::string action;       // user_add, user_remove, quota_set, ...
    std::string target_user;  // the user it concerns (id), or empty
    std::string detail;
};

// A stored answer of the Responses API: the input items of its turn and the response object
// (with its output items), chained to the one before it.
struct response_record {
    std::string id;  // "resp_" + 48 hex digits
    std::string user_id;
    std::string conversation_id;       // or empty
    std::string previous_response_id;  // or empty
    std::string input_json = "[]";     // this turn's input items (normalised), a JSON array
    std::string body_json  = "{}";     // the response object as answered, a JSON object
    int64_t     created_at = 0;
};

struct search_hit {
    std::string conversation_id, item_id, title, snippet;
};

// "sha256:" digests of API keys are what the store keeps; this makes one from a key.
std::string key_digest(const std::string & key);

class store {
  public:
    virtual ~store() = default;

    // --- users
    virtual error add_user(const std::string & name, bool admin, const std::string & digest, user_record & out) = 0;
    virtual error add_key(const std::string & user_id, const std::string & digest)                              = 0;
    virtual error find_user_by_name(const std::string & name, user_record & out)                                = 0;
    virtual error find_user_by_key(const std::string & digest, user_record & out)                              = 0;
    virtual error get_user(const std::string & user_id, user_record & out)                                     = 0;
    virtual error list_users(std::vector<user_record> & out)                                                   = 0;
    virtual error count_keys(int64_t & n)                                                                      = 0;
    // Everything stored for the user, for real (rows, search index, orphaned blobs); the audit
    // log keeps one "user_erase" entry naming only the id.
    virtual error erase_user(const std::string & user_id, const std::string & actor) = 0;

    // --- conversations and items
    virtual error create_conversation(const std::string & user_id, const std::string & title,
                                      const std::string & metadata_json, conversation_record & out)   = 0;
    virtual error get_conversation(const std::string & user_id, const std::string & id, conversation_record & out) = 0;
    // Newest first; before_updated_at > 0 pages (conversations updated before it).
    virtual error list_conversations(const std::string & user_id, int32_t limit, int64_t before_updated_at,
                                     std::vector<conversation_record> & out)                          = 0;
    // Title and metadata; updated_at (the list's order) stays: a rename is not activity.
    virtual error update_conversation(const std::string & user_id, const std::string & id, const std::string & title,
                                      const std::string & metadata_json)                              = 0;
    virtual error delete_conversation(const std::string & user_id, const std::string & id)            = 0;
    // Appends in order, atomically (all or none); fills id (unless set), conversation_id, seq
    // and created_at of each.
    virtual error append_items(const std::string & user_id, const std::string & conversation_id,
                               std::vector<item_record> & items)                                     = 0;
    // At most limit items, oldest first with seq > after_seq; newest_first: with seq < after_seq
    // (0: from the newest).
    virtual error list_items(const std::string & user_id, const std::string & conversation_id, int64_t after_seq,
                             int32_t limit, std::vector<item_record> & out, bool newest_first = false) = 0;
    virtual error get_item(const std::string & user_id, const std::string & item_id, item_record & out) = 0;
    virtual error delete_item(const std::string & user_id, const std::string & item_id)                 = 0;
    // Full-text search over the user's titles and item texts (SQLite FTS5 syntax is not
    // exposed: the query is words, each matched as a prefix).
    virtual error search(const std::string & user_id, const std::string & query, int32_t limit,
                         std::vector<search_hit> & out) = 0;

    // --- files (content-addressed blobs; a blob shared by two users is stored once)
    virtual error put_file(const std::string & user_id, const std::string & name, const std::string & mime,
                           const std::string & purpose, const std::string & content, file_record & out) = 0;
    virtual error get_file(const std::string & user_id, const std::string & id, file_record & out,
                           std::string * content)                                                       = 0;
    virtual error list_files(const std::string & user_id, std::vector<file_record> & out)               = 0;
    virtual error delete_file(const std::string & user_id, const std::string & id)                      = 0;
    // All users' files: how many, and their bytes (a blob shared by two counts twice).
    virtual error file_totals(int64_t & files, int64_t & bytes)                                        = 0;

    // --- quotas and audit
    virtual error set_quota(const std::string & user_id, const quota_record & q, const std::string & actor) = 0;
    virtual error get_quota(const std::string & user_id, quota_record & out)                               = 0;
    virtual error audit(const std::string & actor, const std::string & action, const std::string & target_user,
                        const std::string & detail)                                                        = 0;
    // Tokens and requests a user spent on a day (days since 1970-01-01, UTC): what the
    // tokens-per-day quota counts. add_usage adds to the day's totals.
    virtual error add_usage(const std::string & user_id, int64_t day, int64_t tokens, int64_t requests) = 0;
    virtual error get_usage(const std::string & user_id, int64_t day, int64_t & tokens, int64_t & requests) = 0;
    // Entries about the user (target_user), oldest first; empty user_id: all.
    virtual error list_audit(const std::string & user_id, std::vector<audit_record> & out) = 0;

    // Responses (at most 8 MiB of JSON each); a foreign id is ERROR_NOT_FOUND.
    virtual error put_response(const std::string & user_id, response_record & r) = 0;  // fills created_at
    virtual error get_response(const std::string & user_id, const std::string & id, response_record & out) = 0;
    virtual error delete_response(const std::string & user_id, const std::string & id) = 0;

    // Everything stored for the user as one JSON document (conversations with their items and
    // traces, files' metadata, quota, audit entries about them). Files' contents are not
    // inlined: each file carries its id, to be fetched by link.
    virtual error export_user(const std::string & user_id, std::string & json_out) = 0;

    // The schema version this store is at (PRAGMA user_version for SQLite).
    virtual int schema_version() const = 0;

    // Whether other processes (other Muse nodes) share this store (PostgreSQL): then the
    // requests-per-minute quota is counted here (take_request), not in each node's memory.
    virtual bool shared() const { return false; }
    // Counts one request of the user in Unix minute `minute` unless `limit` are counted there
    // already (allowed says which), atomically across every process sharing the store. Only
    // a shared store implements it.
    virtual error take_request(const std::string & user_id, int64_t minute, int64_t limit, bool & allowed) {
        (void) user_id, (void) minute, (void) limit;
        allowed = true;
        return { ERROR_INTERNAL, "this store does not count requests per minute" };
    }
};

// Caps on what one call may store (every field is checked; the message names the field).
inline constexpr size_t k_store_max_title        = 512;
inline constexpr size_t k_store_max_metadata     = 16 * 1024;
inline constexpr size_t k_store_max_item_bytes   = 8 * 1024 * 1024;  // content + text + reasoning + trace + usage
inline constexpr size_t k_store_max_items_append = 1000;
inline constexpr size_t k_store_max_file_bytes   = 512 * 1024 * 1024;
inline constexpr int32_t k_store_max_list        = 1000;

}  // namespace muse
