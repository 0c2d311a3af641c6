#pragma once
// Text as the safety rules read it: Unicode NFKC with case folding (ICU), so "ＫＩＬＬ", "Kill"
// and "kill" read alike, with the characters that hide text removed: zero-width and other
// invisible format characters, bidirectional controls, Unicode tag characters (U+E0000 block,
// used to smuggle instructions), and variation selectors. Invalid UTF-8 becomes U+FFFD.
//
//   std::string folded = muse::fold_for_rules(user_text);
//   size_t n = muse::count_hidden_chars(text);       // how many a reader would not see
//
// Thread safety: reentrant.

#include <string>
#include <string_view>

namespace muse {

std::string fold_for_rules(std::string_view text);

// The invisible, bidirectional-control and tag characters in `text` (what fold_for_rules and
// strip_hidden_chars remove).
size_t count_hidden_chars(std::string_view text);

// `text` without those characters, otherwise unchanged (no folding): for showing or passing on.
std::string strip_hidden_chars(std::string_view text);

}  // namespace muse
