#pragma once
// Output text of one sequence on its way to the reader: holds back bytes that may still
// become a stop string or that end in an incomplete UTF-8 character, and hands out valid
// UTF-8 only (a model can emit byte tokens that never form a character; parsers, JSON and
// terminals all need valid text).

#include "core/utf8.h"

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

}  // namespace muse
