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

std::string utf8_sanitize(const std::string & s) {
    static const char k_replacement[] = "\xEF\xBF\xBD";  // U+FFFD
    std::string       out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = (unsigned char) s[i];
        size_t   need = 0;
        uint32_t min  = 0;
        if (c < 0x80) {
            out += (char) c;
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 2, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 3, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 4, min = 0x10000;
        }
        bool     ok = need > 0 && i + need <= s.size();
        uint32_t cp = need == 2 ? (c & 0x1F) : need == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; ok && k < need; ++k) {
            const unsigned char d = (unsigned char) s[i + k];
            ok                    = (d & 0xC0) == 0x80;
            cp                    = (cp << 6) | (d & 0x3F);
        }
        // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
        ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (ok) {
            out.append(s, i, need);
            i += need;
        } else {
            out += k_replacement;  // one replacement per bad byte run start, then resync
            i++;
            while (i < s.size() && ((unsigned char) s[i] & 0xC0) == 0x80) {
                i++;
            }
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
