#pragma once
// Output text of one sequence on its way to the reader: holds back bytes that may still
// become a stop string or that end in an incomplete UTF-8 character, and hands out valid
// UTF-8 only (a model can emit byte tokens that never form a character; parsers, JSON and
// terminals all need valid text).

#include <string>
#include <vector>

namespace muse {

class text_stream {
  public:
    void set_stops(std::vector<std::string> s) { stops = std::move(s); }

    // Appends a token's piece; returns the text that is now safe to show. Sets `stopped`
    // when a stop string appeared (the stop string and what follows are dropped).
    std::string add(const std::string & piece, bool & stopped);

    // Returns whatever is still held back (at the end of generation).
    std::string flush();


  private:
    std::vector<std::string> stops;
    std::string              text;
    size_t                   emitted = 0;
};

// Length of the longest prefix of s that does not end inside a UTF-8 character.
size_t utf8_complete_length(const std::string & s);

// s with every invalid UTF-8 sequence (stray continuation bytes, a lead byte cut short,
// overlong forms, surrogates) replaced by U+FFFD.
std::string utf8_sanitize(const std::string & s);

// The longest prefix (suffix) of s of at most n bytes that starts and ends on character
// boundaries: for cutting text to a size without splitting a character.
std::string utf8_head(const std::string & s, size_t n);
std::string utf8_tail(const std::string & s, size_t n);

// True when s is valid UTF-8 throughout.
bool utf8_valid(const std::string & s);

}  // namespace muse
