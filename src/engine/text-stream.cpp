#include "text-stream.h"

#include <algorithm>

namespace muse {

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
