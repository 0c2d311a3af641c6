#pragma once
// Whole-file reads with a size cap, checked before a byte is read, for attached files.

#include "engine/error.h"

#include <string>

namespace muse {

// Reads path into out. `what` names the file in errors ("image", "data file"); `fix` says what
// to do when it is over max_bytes ("resize or recompress it").
error read_file_capped(const std::string & path, size_t max_bytes, const std::string & what, const std::string & fix,
                       std::string & out);

}  // namespace muse
