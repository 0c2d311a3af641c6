// Unicode folding for the safety rules (see normalize.h), on ICU.

#include "normalize.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

namespace muse {

namespace {

// Characters a reader does not see but a model reads.
bool hidden(UChar32 c) {
    if (c >= 0xE0000 && c <= 0xE007F) return true;   // tags
    if (c >= 0xFE00 && c <= 0xFE0F) return true;     // variation selectors
    if (c >= 0xE0100 && c <= 0xE01EF) return true;   // variation selectors supplement
    if (c == 0x00AD || c == 0x034F || c == 0x061C || c == 0x115F || c == 0x1160 || c == 0x17B4 || c == 0x17B5 || c == 0x180E ||
        c == 0x3164 || c == 0xFFA0 || c == 0xFEFF) {
        return true;                                  // soft hyphen, fillers, BOM
    }
    if ((c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F)) return true;  // zero-width, bidi
    return u_charType(c) == U_FORMAT_CHAR;
}

template <typename F> void each_char(std::string_view s, F && f) {
    int32_t i = 0;
    const int32_t n = (int32_t) s.size();
    while (i < n) {
        const int32_t start = i;
        UChar32       c;
        U8_NEXT(s.data(), i, n, c);
        f(c < 0 ? 0xFFFD : c, s.substr((size_t) start, (size_t) (i - start)));
    }
}

}  // namespace

size_t count_hidden_chars(std::string_view text) {
    size_t k = 0;
    each_char(text, [&](UChar32 c, std::string_view) { k += hidden(c) ? 1 : 0; });
    return k;
}

std::string strip_hidden_chars(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    each_char(text, [&](UChar32 c, std::string_view raw) {
        if (hidden(c)) return;
        if (c == 0xFFFD && raw != "\xEF\xBF\xBD") out += "\xEF\xBF\xBD";
        else out.append(raw);
    });
    return out;
}

std::string fold_for_rules(std::string_view text) {
    const std::string visible = strip_hidden_chars(text);
    UErrorCode        st      = U_ZERO_ERROR;
    const icu::Normalizer2 * nfkc_cf = icu::Normalizer2::getNFKCCasefoldInstance(st);
    if (U_FAILURE(st) || !nfkc_cf) {
        std::string o = visible;  // ICU's data missing: ASCII lower case at least
        for (char & c : o) c = (char) std::tolower((unsigned char) c);
        return o;
    }
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(visible.data(), (int32_t) visible.size()));
    icu::UnicodeString folded = nfkc_cf->normalize(u, st);
    if (U_FAILURE(st)) folded = u;
    std::string out;
    folded.toUTF8String(out);
    return out;
}

}  // namespace muse
