#pragma once
// Attached files: whole-file reads with a size cap checked before a byte is read, and names.

#include "engine/error.h"

#include <string>

namespace muse {

// The file's name without its directories ("data/sales.csv" -> "sales.csv").
std::string file_name(const std::string & path);

// Reads path into out. `what` names the file in errors ("image", "data file"); `fix` says what
// to do when it is over max_bytes ("resize or recompress it").
error read_file_capped(const std::string & path, size_t max_bytes, const std::string & what, const std::string & fix,
                       std::string & out);

}  // namespace muse
