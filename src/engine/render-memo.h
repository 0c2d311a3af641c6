#pragma once
// The last few renders of a model's chat template (common_chat_templates_apply), each kept
// for a few seconds. Contemplating renders one conversation once for its shared prefix and
// again for each of its K agents (they differ only in the text Muse appends after the
// render), and llama.cpp's apply analyses the template again on every call: about a
// millisecond of CPU each, taken from the decode that runs meanwhile.
//
//   common_chat_params cp;
//   const std::string  key = render_memo::key(inputs);
//   if (!memo.get(key, cp)) { cp = common_chat_templates_apply(tmpls, inputs); memo.put(key, cp); }
//
// Entries expire after k_ttl, so a template that prints the date (strftime_now) is not kept
// past the moment it was rendered for. format_chat() prefixes the key with the request's
// cache salt, so a render is shared only within one sharing scope (one user's requests). Thread safety: every member may be called from any thread.

#include "chat.h"

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>

namespace muse {

class render_memo {
  public:
    static constexpr size_t                    k_entries       = 8;
    static constexpr size_t                    k_max_key_bytes = 256 * 1024;  // longer conversations are rendered each time
    static constexpr std::chrono::milliseconds k_ttl{ 5000 };

    explicit render_memo(std::chrono::milliseconds ttl = k_ttl) : ttl(ttl) {}

    // Everything of `in` that a render reads, length-prefixed (no two inputs share a key);
    // empty when the inputs are too large to keep.
    static std::string key(const common_chat_templates_inputs & in);

    bool get(const std::string & key, common_chat_params & out);
    void put(std::string key, const common_chat_params & value);

    uint64_t hits() const;

  private:
    using clock = std::chrono::steady_clock;
    struct entry {
        std::string        key;
        common_chat_params value;
        clock::time_point  at;
    };
    const std::chrono::milliseconds ttl;
    mutable std::mutex              mu;
    std::list<entry>   entries;  // most recently rendered first
    uint64_t           n_hits = 0;
};

}  // namespace muse
