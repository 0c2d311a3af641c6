#pragma once
// Unguessable ids (files, responses, tool calls) from the kernel's CSPRNG (getrandom(2)).
//
//   std::string id = "file-" + random_hex(24);
//
// Thread safety: reentrant.

#include <cstddef>
#include <string>

namespace muse {

// n lowercase hex digits of fresh randomness.
std::string random_hex(size_t n);

}  // namespace muse
