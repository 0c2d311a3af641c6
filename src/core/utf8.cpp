#include "utf8.h"

#include <algorithm>

namespace muse {

namespace {

// Length of the valid UTF-8 character at s[i], or 0 when the bytes there are not one
// (stray continuation byte, a lead byte cut short, overlong form, surrogate, past U+10FFFF).
size_t char_at(std::string_view s, size_t i) {
    const unsigned char c = (unsigned char) s[i];
    if (c < 0x80) {
        return 1;
    }
    size_t   need = 0;
    uint32_t min  = 0;
    if ((c & 0xE0) == 0xC0) {
        need = 2, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        need = 3, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        need = 4, min = 0x10000;
    } else {
        return 0;
    }
    if (i + need > s.size()) {
        return 0;
    }
    uint32_t cp = need == 2 ? (c & 0x1F) : need == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < need; ++k) {
        const unsigned char d = (unsigned char) s[i + k];
        if (!utf8_is_continuation(d)) {
            return 0;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) ? need : 0;
}

}  // namespace

size_t utf8_length(std::string_view s) {
    return (size_t) std::count_if(s.begin(), s.end(), [](char c) { return !utf8_is_continuation(c); });
}

size_t utf8_prefix_bytes(std::string_view s, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (!utf8_is_continuation(s[i])) {
            if (chars == n) {
                return i;
            }
            ++chars;
        }
    }
    return s.size();
}

size_t utf8_floor(std::string_view s, size_t at) {
    if (at >= s.size()) {
        return s.size();
    }
    while (at > 0 && utf8_is_continuation(s[at])) {
        at--;  // s[at] would continue the character before the cut
    }
    return at;
}

size_t utf8_next(std::string_view s, size_t i) {
    i++;
    while (i < s.size() && utf8_is_continuation(s[i])) {
        i++;
    }
    return i;
}

size_t utf8_complete_length(std::string_view s) {
    // Walk back over at most 3 continuation bytes to the lead byte of the last character.
    const size_t n = s.size();
    for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
        const unsigned char c = (unsigned char) s[n - back];
        if (utf8_is_continuation(c)) {
            continue;
        }
        size_t need = 1;
        if ((c & 0xE0) == 0xC0) {
            need = 2;
        } else if ((c & 0xF0) == 0xE0) {
            need = 3;
        } else if ((c & 0xF8) == 0xF0) {
            need = 4;
        }
        return back >= need ? n : n - back;
    }
    return n;
}

std::string utf8_head(const std::string & s, size_t n) {
    if (s.size() <= n) {
        return s;
    }
    return s.substr(0, utf8_floor(s, n));
}

std::string utf8_tail(const std::string & s, size_t n) {
    if (s.size() <= n) {
        return s;
    }
    size_t from = s.size() - n;
    while (from < s.size() && utf8_is_continuation(s[from])) {
        from++;
    }
    return s.substr(from);
}

bool utf8_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = char_at(s, i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

std::string utf8_sanitize(const std::string & s) {
    if (utf8_valid(s)) {
        return s;
    }
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t i = 0; i < s.size();) {
        const size_t n = char_at(s, i);
        if (n > 0) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        out += "\xEF\xBF\xBD";  // U+FFFD for the bad byte and the continuation bytes after it
        i = utf8_next(s, i);
    }
    return out;
}

void utf8_append(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char) cp;
    } else if (cp < 0x800) {
        out += (char) (0xC0 | (cp >> 6));
        out += (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char) (0xE0 | (cp >> 12));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    } else {
        out += (char) (0xF0 | (cp >> 18));
        out += (char) (0x80 | ((cp >> 12) & 0x3F));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    }
}

}  // namespace muse
