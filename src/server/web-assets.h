#pragma once
// The web chat and the browser libraries it loads, compiled into the binary (generated at build
// time by cmake/embed-file.cmake and cmake/embed-assets.cmake from web/ and the pinned npm
// packages that scripts/setup installs), so `muse serve` needs no files beside it and no CDN.

#include <cstddef>

namespace muse {

extern const unsigned char web_index_html[];
extern const size_t        web_index_html_len;

// One file served under /assets/ (src/server/routes-assets.cpp).
struct web_asset {
    const char *          name;          // the path below /assets/: "marked.js", "fonts/KaTeX_Main-Regular.woff2"
    const char *          content_type;
    const char *          etag;          // quoted, from the bytes' SHA-256
    const unsigned char * data;
    size_t                size;
};

extern const web_asset web_assets[];
extern const size_t    web_assets_count;

}  // namespace muse
