#pragma once
// Files uploaded through POST /v1/files: images and tables kept in memory for later
// requests (`attachments: ["file-..."]`), each visible only to the user who uploaded it.
//
// Caps: bytes per file, files per user, bytes in all. A put over a cap fails and leaves what
// is stored as it was.
//
// Thread safety: every method may be called from any thread.

#include "engine/error.h"

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
    std::shared_ptr<const std::string> bytes;
};

struct file_store_limits {
    size_t max_file_bytes     = 32u << 20;
    size_t max_files_per_user = 64;
    size_t max_total_bytes    = 512u << 20;
};

// A name as a client sent it, made safe to store and show: valid UTF-8 (invalid bytes
// replaced), no directories or control characters, at most max_bytes on a character
// boundary; "upload" when nothing is left.
std::string normalize_file_name(const std::string & raw, size_t max_bytes = 255);

class file_store {
  public:
    explicit file_store(file_store_limits lim = {}) : lim(lim) {}

    // Stores f (its id is assigned here); ERROR_INVALID_ARGUMENT naming the cap when full.
    error put(stored_file & f);
    bool  get(const std::string & user, const std::string & id, stored_file & out) const;
    std::vector<stored_file> list(const std::string & user) const;
    bool  remove(const std::string & user, const std::string & id);

    size_t total_bytes() const;
    size_t count() const;
    const file_store_limits & limits() const { return lim; }

  private:
    file_store_limits                  lim;
    mutable std::mutex                 mu;
    std::map<std::string, stored_file> files;  // by id
    size_t                             bytes = 0;
};

}  // namespace muse
