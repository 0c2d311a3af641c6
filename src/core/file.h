#pragma once
// Opening files named by users: only regular files. A FIFO, socket, device or directory
// given as --image, --data, --model or a key file would block a read forever or never end;
// it is refused with what it is, without blocking (the open itself does not wait for a
// writer).
//
//   std::string why;
//   int fd = open_regular_file(path, why);   // -1: why says "... is a FIFO (named pipe), ..."
//   // read, then close(fd)
//
// Thread safety: reentrant.

#include <cstdint>
#include <string>

namespace muse {

// A read-only descriptor (O_CLOEXEC) of a regular file, or -1 with why set to one line that
// names the path and what is wrong. size (optional) receives the file's size.
int open_regular_file(const std::string & path, std::string & why, uint64_t * size = nullptr);

// Reads all of a descriptor's bytes, at most max_bytes + 1 (so a caller sees that a file grew
// past its cap); false on a read error.
bool read_fd(int fd, size_t max_bytes, std::string & out);

}  // namespace muse
