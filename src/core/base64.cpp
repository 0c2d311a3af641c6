#include "base64.h"

#include <cstdint>

namespace muse {

namespace {

// The 6-bit value of a base64 character, or -1. `alphabet` is 0 until the first character
// proper to one alphabet decides it: 1 standard ("+/"), 2 URL-safe ("-_").
int base64_value(char c, int & alphabet) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    const int which = c == '+' || c == '/' ? 1 : c == '-' || c == '_' ? 2 : 0;
    if (which == 0 || (alphabet != 0 && alphabet != which)) return -1;
    alphabet = which;
    return c == '+' || c == '-' ? 62 : 63;
}

}  // namespace

bool base64_decode(std::string_view text, std::string & out) {
    out.clear();
    out.reserve(text.size() / 4 * 3 + 3);
    uint32_t acc  = 0;  // bits not yet written, the newest in the low end
    int      bits = 0;
    int      alphabet = 0;
    size_t   i    = 0;
    for (; i < text.size() && text[i] != '='; ++i) {
        const int v = base64_value(text[i], alphabet);
        if (v < 0) {
            out.clear();
            return false;
        }
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((char) ((acc >> bits) & 0xFF));
        }
    }
    for (; i < text.size(); ++i) {
        if (text[i] != '=') {
            out.clear();
            return false;
        }
    }
    return true;
}

std::string base64_encode(std::string_view bytes) {
    static const char * k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string         out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = ((uint32_t) (uint8_t) bytes[i] << 16) | ((uint32_t) (uint8_t) bytes[i + 1] << 8) | (uint8_t) bytes[i + 2];
        out += k[v >> 18];
        out += k[(v >> 12) & 63];
        out += k[(v >> 6) & 63];
        out += k[v & 63];
    }
    if (i < bytes.size()) {
        const bool     two = i + 1 < bytes.size();
        const uint32_t v   = ((uint32_t) (uint8_t) bytes[i] << 16) | (two ? (uint32_t) (uint8_t) bytes[i + 1] << 8 : 0);
        out += k[v >> 18];
        out += k[(v >> 12) & 63];
        out += two ? k[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace muse
