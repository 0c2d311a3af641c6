#pragma once
// The web chat, compiled into the binary (generated from web/ at build time by
// cmake/embed-file.cmake), so `muse serve` needs no files beside it and no CDN.

#include <cstddef>

namespace muse {

extern const unsigned char web_index_html[];
extern const size_t        web_index_html_len;

}  // namespace muse
