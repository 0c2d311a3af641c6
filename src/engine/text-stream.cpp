#include "text-stream.h"

#include <algorithm>
#include <cstdint>

namespace muse {

size_t utf8_complete_length(const std::string & s) {
    // Walk back over at most 3 continuation bytes to the lead byte of the last character.
    size_t n = s.size();
    for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
        const unsigned char c = (unsigned char) s[n - back];
        if ((c & 0xC0) == 0x80) {
            continue;  // continuation byte
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

// Length of the valid UTF-8 character at s[i], or 0 when the bytes there are not one
// (stray continuation byte, a lead byte cut short, overlong form, surrogate, past U+10FFFF).
static size_t utf8_char_at(const std::string & s, size_t i) {
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
        if ((d & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) ? need : 0;
}

std::string utf8_head(const std::string & s, size_t n) {
    if (s.size() <= n) {
        return s;
    }
    size_t end = n;
    while (end > 0 && ((unsigned char) s[end] & 0xC0) == 0x80) {
        end--;  // s[end] would continue the character before the cut
    }
    return s.substr(0, end);
}

std::string utf8_tail(const std::string & s, size_t n) {
    if (s.size() <= n) {
        return s;
    }
    size_t from = s.size() - n;
    while (from < s.size() && ((unsigned char) s[from] & 0xC0) == 0x80) {
        from++;
    }
    return s.substr(from);
}

bool utf8_valid(const std::string & s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_char_at(s, i);
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
        const size_t n = utf8_char_at(s, i);
        if (n > 0) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        out += "\xEF\xBF\xBD";  // U+FFFD for the bad byte and the continuation bytes after it
        i++;
        while (i < s.size() && ((unsigned char) s[i] & 0xC0) == 0x80) {
            i++;
        }
    }
    return out;
}

std::string text_stream::add(const std::string & piece, bool & stopped) {
    stopped = false;
    text += piece;

    size_t max_stop = 0;
    for (const auto & s : stops) {
        max_stop = std::max(max_stop, s.size());
    }
    // A stop string may straddle earlier pieces, but never starts before what was held back
    // minus its own length.
    const size_t from = emitted >= max_stop ? emitted - max_stop + 1 : 0;
    size_t       hit  = std::string::npos;
    for (const auto & s : stops) {
        hit = std::min(hit, text.find(s, from));
    }
    if (hit != std::string::npos) {
        stopped = true;
        const size_t end = std::max(hit, emitted);
        std::string  out = text.substr(emitted, end - emitted);
        text.resize(end);
        emitted = end;
        return utf8_sanitize(out);
    }

    size_t safe = text.size();
    for (const auto & s : stops) {
        for (size_t k = std::min(s.size() - 1, text.size()); k > 0; --k) {
            if (text.compare(text.size() - k, k, s, 0, k) == 0) {
                safe = std::min(safe, text.size() - k);
                break;
            }
        }
    }
    safe = std::min(safe, utf8_complete_length(text));
    if (safe <= emitted) {
        return {};
    }
    std::string out = text.substr(emitted, safe - emitted);
    emitted         = safe;
    return utf8_sanitize(out);
}

std::string text_stream::flush() {
    std::string out = text.substr(emitted);
    emitted         = text.size();
    return utf8_sanitize(out);
}

}  // namespace muse
