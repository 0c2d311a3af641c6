#include "api-keys.h"

#include "core/file.h"

#include <hash/hash.h>

#include <cctype>

namespace muse {

namespace {

// Equal-length strings compared without an early exit.
bool equal_ct(const std::string & a, const std::string & b) {
    if (a.size() != b.size()) {
        return false;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= (unsigned char) (a[i] ^ b[i]);
    }
    return diff == 0;
}

bool is_hex64(const std::string & s) {
    if (s.size() != 64) {
        return false;
    }
    for (char c : s) {
        if (!std::isxdigit((unsigned char) c)) {
            return false;
        }
    }
    return true;
}

bool valid_key(const std::string & k) {
    if (k.empty() || k.size() > 256) {
        return false;
    }
    for (char c : k) {
        if ((unsigned char) c <= ' ' || (unsigned char) c >= 127) {
            return false;
        }
    }
    return true;
}

}  // namespace

error api_keys::add_digest(const std::string & hex, const std::string & user) {
    if (entries.size() >= k_max_keys) {
        return { ERROR_INVALID_ARGUMENT, "too many API keys (at most " + std::to_string(k_max_keys) + ")" };
    }
    std::string d = hex;
    for (char & c : d) {
        c = (char) std::tolower((unsigned char) c);
    }
    for (const auto & e : entries) {
        if (e.digest == d) {
            return { ERROR_INVALID_ARGUMENT, "the same API key is given twice" };
        }
    }
    entries.push_back({ d, user.empty() ? "key-" + d.substr(0, 8) : user });
    return {};
}

error api_keys::add(const std::string & key, const std::string & user) {
    if (!valid_key(key)) {
        return { ERROR_INVALID_ARGUMENT, "an API key must be 1-256 printable characters without spaces" };
    }
    if (user.size() > 128) {
        return { ERROR_INVALID_ARGUMENT, "a user id must be at most 128 characters" };
    }
    if (key.rfind("sha256:", 0) == 0) {
        const std::string hex = key.substr(7);
        if (!is_hex64(hex)) {
            return { ERROR_INVALID_ARGUMENT, "a hashed API key must be sha256: and 64 hex digits" };
        }
        return add_digest(hex, user);
    }
    return add_digest(hash_sha256_hex(key.data(), key.size()), user);
}

error api_keys::load_file(const std::string & path) {
    std::string text;
    if (error e = read_file_capped(path, 4 << 20, "API key file", "keep one key per line", text)) {
        return e;
    }
    size_t line_no = 0, pos = 0, added = 0;
    while (pos <= text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::string line = text.substr(pos, end - pos);
        pos              = end + 1;
        ++line_no;
        while (!line.empty() && std::isspace((unsigned char) line.back())) {
            line.pop_back();
        }
        size_t b = 0;
        while (b < line.size() && std::isspace((unsigned char) line[b])) {
            ++b;
        }
        line = line.substr(b);
        if (line.empty() || line[0] == '#') {
            if (end == text.size()) break;
            continue;
        }
        std::string user, key;
        const size_t sp = line.find_first_of(" \t");
        if (sp == std::string::npos) {
            key = line;
        } else {
            user = line.substr(0, sp);
            key  = line.substr(line.find_first_not_of(" \t", sp));
            if (key.find_first_of(" \t") != std::string::npos) {
                return { ERROR_INVALID_ARGUMENT, path + ": line " + std::to_string(line_no) + ": expected KEY or USER KEY" };
            }
        }
        if (error e = add(key, user)) {
            return { ERROR_INVALID_ARGUMENT, path + ": line " + std::to_string(line_no) + ": " + e.message };
        }
        ++added;
        if (end == text.size()) break;
    }
    if (added == 0) {
        return { ERROR_INVALID_ARGUMENT, path + ": no API keys in the file (one per line: KEY or USER KEY)" };
    }
    return {};
}

bool api_keys::check(const std::string & key, std::string & user) const {
    if (key.empty() || key.size() > 256) {
        return false;
    }
    const std::string d     = hash_sha256_hex(key.data(), key.size());
    bool              found = false;
    for (const auto & e : entries) {  // every entry is compared: the time does not say which matched
        if (equal_ct(e.digest, d) && !found) {
            found = true;
            user  = e.user;
        }
    }
    return found;
}

}  // namespace muse
