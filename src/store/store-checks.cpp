#include "store-checks.h"

#include "core/random.h"
#include "core/utf8.h"

#include <hash/hash.h>
#include <nlohmann/json.hpp>

#include <set>

namespace muse {

bool valid_user_name(const std::string & n) {
    if (n.empty() || n.size() > 64) return false;
    for (unsigned char c : n) {
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
    }
    return true;
}

error check_json(const std::string & s, bool object, const char * field, size_t cap) {
    if (s.size() > cap) {
        return { ERROR_INVALID_ARGUMENT, std::string(field) + " is " + std::to_string(s.size()) + " bytes; at most " +
                                             std::to_string(cap) };
    }
    if (s.empty()) return {};
    auto j = nlohmann::json::parse(s, nullptr, false);
    if (j.is_discarded() || (object && !j.is_object()) || (!object && !j.is_array())) {
        return { ERROR_INVALID_ARGUMENT, std::string(field) + " must be a JSON " + (object ? "object" : "array") };
    }
    return {};
}

error check_title(const std::string & title) {
    if (title.size() > k_store_max_title) {
        return { ERROR_INVALID_ARGUMENT, "a title is at most " + std::to_string(k_store_max_title) + " bytes, got " +
                                             std::to_string(title.size()) };
    }
    if (!utf8_valid(title)) return { ERROR_INVALID_ARGUMENT, "the title is not valid UTF-8" };
    return {};
}

error check_limit(int32_t limit) {
    if (limit < 1 || limit > k_store_max_list) {
        return { ERROR_INVALID_ARGUMENT, "limit must be in [1, " + std::to_string(k_store_max_list) + "], got " +
                                             std::to_string(limit) };
    }
    return {};
}

error check_new_items(const std::vector<item_record> & items) {
    if (items.size() > k_store_max_items_append) {
        return { ERROR_INVALID_ARGUMENT, "at most " + std::to_string(k_store_max_items_append) + " items at once, got " +
                                             std::to_string(items.size()) };
    }
    static const std::set<std::string> types = { "message", "function_call", "function_call_output", "reasoning" };
    for (size_t i = 0; i < items.size(); ++i) {
        const item_record & it    = items[i];
        const std::string   where = "items[" + std::to_string(i) + "]";
        if (!types.count(it.type)) {
            return { ERROR_INVALID_ARGUMENT, where + ".type must be message, function_call, function_call_output or "
                                                     "reasoning, got '" + it.type + "'" };
        }
        const size_t bytes = it.content_json.size() + it.text.size() + it.reasoning.size() + it.trace_json.size() +
                             it.usage_json.size() + it.role.size() + it.author.size();
        if (bytes > k_store_max_item_bytes) {
            return { ERROR_INVALID_ARGUMENT, where + " is " + std::to_string(bytes) + " bytes; at most " +
                                                 std::to_string(k_store_max_item_bytes) };
        }
        if (error e = check_json(it.content_json.empty() ? "[]" : it.content_json, false, (where + ".content").c_str(),
                                 k_store_max_item_bytes)) {
            return e;
        }
        if (!utf8_valid(it.text) || !utf8_valid(it.reasoning)) {
            return { ERROR_INVALID_ARGUMENT, where + ": text is not valid UTF-8" };
        }
    }
    return {};
}

error new_file_record(const std::string & user_id, const std::string & name, const std::string & mime,
                      const std::string & purpose, const std::string & content, int64_t now, file_record & f) {
    if (name.empty() || name.size() > 255 || !utf8_valid(name)) {
        return { ERROR_INVALID_ARGUMENT, "a file name is 1-255 bytes of UTF-8" };
    }
    if (content.size() > k_store_max_file_bytes) {
        return { ERROR_INVALID_ARGUMENT, "a file is at most " + std::to_string(k_store_max_file_bytes) + " bytes, got " +
                                             std::to_string(content.size()) };
    }
    f.id         = "file-" + random_hex(24);
    f.user_id    = user_id;
    f.name       = name;
    f.mime       = utf8_head(mime, 255);
    f.purpose    = utf8_head(purpose, 64);
    f.sha256     = hash_sha256_hex(content.data(), content.size());
    f.bytes      = (int64_t) content.size();
    f.created_at = now;
    return {};
}

}  // namespace muse
