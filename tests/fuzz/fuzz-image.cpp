// Image intake: format sniffing, header checks and decoding of any bytes (PNG, JPEG, GIF, BMP,
// WebP, and everything that is none of them). A crash, a hang or an allocation past the
// limits is a bug; a refusal is the expected answer to most inputs.
#include "perception/image.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    muse::image_limits lim;
    lim.max_pixels = 4000000;  // keeps each run fast; the checks are the same at any cap
    muse::image img;
    (void) muse::load_image_bytes("fuzz", std::string((const char *) data, size), lim, img);
    return 0;
}
