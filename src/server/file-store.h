#pragma once
// Files uploaded through POST /v1/files: images and tables kept for later requests
// (`attachments: ["file-..."]`), each visible only to the user who uploaded it. In memory, or,
// attached to the data directory's store (attach()), in the store: they survive restarts.
//
// Caps: bytes per file, files per user, bytes in all. A put over a cap fails and leaves what
// is stored as it was.
//
// Thread safety: every method may be called from any thread.

#include "app/data.h"
#include "core/error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

struct stored_file {
    std::string id;        // "file-" and 24 hex digits
    std::string user;
    std::string filename;
    std::string purpose;
    std::string kind;      // image or table
    std::string format;    // png, jpeg, ... / csv, tsv, json, jsonl
    int64_t     created_at = 0;  // Unix seconds
    std::shared_ptr<const std::string> bytes;  // list(): empty, with the size in `size`
    size_t size = 0;                           // the content's bytes
};

struct file_store_limits {
    size_t max_file_bytes     = 32u << 20;
    size_t max_files_per_user = 64;
    size_t max_bytes_per_user = 64u << 20;   // so that one user cannot fill the store for all
    size_t max_total_bytes    = 512u << 20;
};

// Why a put was refused (the server's status): TOO_LARGE 413, QUOTA 429, FULL 507, STORAGE
// 503 (the data directory cannot be written).
enum class file_refusal { NONE, EMPTY, TOO_LARGE, QUOTA, FULL, STORAGE };

// A name as a client sent it, made safe to store and show: valid UTF-8 (invalid bytes
// replaced), no directories or control characters, at most max_bytes on a character
// boundary; "upload" when nothing is left.
std::string normalize_file_name(const std::string & raw, size_t max_bytes = 255);

class file_store {
  public:
    explicit file_store(file_store_limits lim = {}) : lim(lim) {}

    // Stores f (its id is assigned here); ERROR_INVALID_ARGUMENT naming the cap when over one
    // (and `why` says which kind). A refused put stores nothing.
    error put(stored_file & f, file_refusal * why = nullptr);
    // The user's files and bytes.
    void usage(const std::string & user, size_t & n_files, size_t & n_bytes) const;
    bool  get(const std::string & user, const std::string & id, stored_file & out) const;
    std::vector<stored_file> list(const std::string & user) const;
    bool  remove(const std::string & user, const std::string & id);

    size_t total_bytes() const;
    size_t count() const;
    const file_store_limits & limits() const { return lim; }

    // From now on, files live in st (which must outlive this): a user is the store's user of
    // that name, created on first use (a user of --api-key, or "local").
    void attach(store * st) { db = st; }

    // The store's id of the user with this name, made on first use (attached only).
    error user_id(const std::string & user, std::string & id) const;
    // Forgets the name's id (the user was erased: a later use makes a new one).
    void forget(const std::string & user) {
        std::lock_guard<std::mutex> lk(ids_mu);
        ids.erase(user);
    }

  private:
    store *                            db = nullptr;
    mutable std::mutex                 ids_mu;
    mutable std::map<std::string, std::string> ids;  // user name -> store user id
    void   usage_locked(const std::string & user, size_t & n_files, size_t & n_bytes) const;
    size_t total_locked() const;

    file_store_limits                  lim;
    mutable std::mutex                 mu;
    std::map<std::string, stored_file> files;  // by id
    size_t                             bytes = 0;
};

}  // namespace muse
