#pragma once
// UTF-8 helpers, one copy for all of Muse: checking and repairing text from outside (model
// byte tokens, file names, OCR, uploaded tables), counting characters, and cutting text to a
// size without splitting a character.
//
//   std::string safe = utf8_sanitize(raw);          // invalid sequences become U+FFFD
//   std::string cut  = utf8_head(safe, 200);         // at most 200 bytes, whole characters
//   size_t      n    = utf8_length(safe);            // characters (code points)
//
// "Characters" are code points. Counting and cutting look only at continuation bytes
// (10xxxxxx), so they never fail: on invalid text each byte that is not a continuation byte
// counts as one character. utf8_valid / utf8_sanitize apply the full rules (no overlong forms,
// surrogates or code points past U+10FFFF).
//
// Thread safety: pure functions, reentrant.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace muse {

// A continuation byte (10xxxxxx): it never starts a character.
inline bool utf8_is_continuation(unsigned char c) {
    return (c & 0xC0) == 0x80;
}
inline bool utf8_is_continuation(char c) {
    return utf8_is_continuation((unsigned char) c);
}

// Characters (code points) in s.
size_t utf8_length(std::string_view s);

// Byte length of the first n characters of s (all of s when it has fewer).
size_t utf8_prefix_bytes(std::string_view s, size_t n);

// The largest character boundary <= at (at is clamped to s.size()): where to cut s so that
// no character is split.
size_t utf8_floor(std::string_view s, size_t at);

// Where the character starting at byte i ends: i + 1 and the continuation bytes after it.
size_t utf8_next(std::string_view s, size_t i);

// Length of the longest prefix of s that does not end inside a UTF-8 character.
size_t utf8_complete_length(std::string_view s);

// The longest prefix (suffix) of s of at most n bytes that starts and ends on character
// boundaries: for cutting text to a size without splitting a character.
std::string utf8_head(const std::string & s, size_t n);
std::string utf8_tail(const std::string & s, size_t n);

// True when s is valid UTF-8 throughout.
bool utf8_valid(std::string_view s);

// s with every invalid UTF-8 sequence (stray continuation bytes, a lead byte cut short,
// overlong forms, surrogates) replaced by U+FFFD.
std::string utf8_sanitize(const std::string & s);

// Appends code point cp (at most U+10FFFF) as UTF-8.
void utf8_append(std::string & out, uint32_t cp);

}  // namespace muse
