#include "data-block.h"

namespace muse {

namespace {

std::string escape(std::string_view s, bool attr) {
    std::string out;
    out.reserve(s.size() + 16);
    for (const char c : s) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"':
                if (attr) {
                    out += "&quot;";
                } else {
                    out += c;
                }
                break;
            case '\n':
            case '\t': out += attr ? ' ' : c; break;
            case '\r': out += attr ? "" : "\r"; break;
            default:
                if ((unsigned char) c >= 0x20 && c != 0x7f) {
                    out += c;
                }
        }
    }
    return out;
}

}  // namespace

std::string block_text(std::string_view s) {
    return escape(s, false);
}

std::string block_attr(std::string_view s) {
    return escape(s, true);
}

}  // namespace muse
