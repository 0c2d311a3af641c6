#pragma once
// API keys for `muse serve`: each key maps to a user id. Only SHA-256 digests of the keys
// are kept, and a presented key is compared with every digest in constant time.
//
//   api_keys keys;
//   keys.add("sk-secret", "alice");
//   if (error e = keys.load_file("keys.txt")) { ... }
//   std::string user;
//   if (keys.check(bearer_token, user)) { ... }
//
// Key file: one key per line, `KEY` or `USER KEY`; KEY may be given already hashed as
// `sha256:<64 hex digits>`, so that the file need not hold the secret itself. Blank lines and
// lines starting with # are skipped.
//
// Thread safety: build it before serving; check() is then safe from any thread.

#include "core/error.h"

#include <string>
#include <vector>

namespace muse {

class api_keys {
  public:
    static constexpr size_t k_max_keys = 4096;

    // user empty: "key-" and the first 8 hex digits of the key's digest.
    error add(const std::string & key, const std::string & user = "");
    error load_file(const std::string & path);

    bool   empty() const { return entries.empty(); }
    size_t size() const { return entries.size(); }

    // True when `key` is one of the keys; `user` receives its user id.
    bool check(const std::string & key, std::string & user) const;

  private:
    struct entry {
        std::string digest;  // 64 lower-case hex digits
        std::string user;
    };
    error add_digest(const std::string & hex, const std::string & user);
    std::vector<entry> entries;
};

}  // namespace muse
