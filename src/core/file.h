#pragma once
// Opening files named by users: only regular files. A FIFO, socket, device or directory
// given as --image, --data, --model or a key file would block a read forever or never end;
// it is refused with what it is, without blocking (the open itself does not wait for a
// writer). Whole-file reads have a size cap checked before a byte is read.
//
//   std::string why;
//   int fd = open_regular_file(path, why);   // -1: why says "... is a FIFO (named pipe), ..."
//   // read, then close(fd)
//
//   std::string bytes;
//   if (error e = read_file_capped(path, 32 << 20, "image", "resize or recompress it", bytes)) ...
//
// Thread safety: reentrant.

#include "core/error.h"

#include <cstdint>
#include <string>

namespace muse {

// A read-only descriptor (O_CLOEXEC) of a regular file, or -1 with why set to one line that
// names the path and what is wrong. size (optional) receives the file's size.
int open_regular_file(const std::string & path, std::string & why, uint64_t * size = nullptr);

// Reads all of a descriptor's bytes, at most max_bytes + 1 (so a caller sees that a file grew
// past its cap); false on a read error.
bool read_fd(int fd, size_t max_bytes, std::string & out);

// The file's name without its directories ("data/sales.csv" -> "sales.csv").
std::string file_name(const std::string & path);

// Reads path into out. `what` names the file in errors ("image", "data file"); `fix` says what
// to do when it is over max_bytes ("resize or recompress it").
error read_file_capped(const std::string & path, size_t max_bytes, const std::string & what, const std::string & fix,
                       std::string & out);

}  // namespace muse
