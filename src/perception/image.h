#pragma once
// Images for agents: PNG, JPEG, GIF (first frame), BMP and WebP from a file, raw bytes or a
// base64 `data:` URI, decoded to RGB by Debian's libpng, libjpeg-turbo, giflib and libwebp (BMP
// by a small reader of its own) with every allocation bounded by image_limits: the size a
// header announces is checked before a pixel is decoded, decoders read row by row into the one
// RGB buffer, and a truncated or corrupt file is refused, never decoded half black. Transparent
// pixels are composited onto a background that contrasts with the opaque ones. OCR with
// Tesseract (orientation, deskew, small text upscaled), and the delimited, untrusted text block
// that stands in for an image when the model has no vision projector.
//
//   image img;
//   if (error err = load_image_file("shot.png", {}, img)) { /* one line: what is wrong */ }
//   ocr_result text = ocr_image(img);          // words in reading order, or an error
//   prompt += image_text_block(img, text);      // "<image ...> size, colours, OCR text </image>"
//
// Thread safety: the functions are reentrant; ocr_image creates its own Tesseract instances.

#include "core/error.h"
#include "core/media.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

struct image_limits {
    size_t  max_bytes  = 32u << 20;    // encoded size
    int64_t max_pixels = 50000000;     // width x height, checked from the header before decoding
    int32_t max_side   = 16384;        // either dimension
    size_t  max_decode = 224u << 20;   // memory decoding may hold: RGB, alpha, the decoder's buffers
    std::string max_decode_name = "limit";  // what max_decode is, for the error ("limit", a budget)
};

// A decoded image: the pixels, size and content hash that a chat message carries
// (core/media.h: a shared_ptr<const image> is one to a media), and its container format.
struct image : media {
    std::string format;  // png, jpeg, gif, bmp, webp
};

// The container by its first bytes: png, jpeg, gif, bmp, webp, or "" when none of them.
std::string image_format(const std::string & bytes);

error load_image_file(const std::string & path, const image_limits & lim, image & out);
error load_image_bytes(const std::string & name, const std::string & bytes, const image_limits & lim, image & out);
// data:image/png;base64,.... (other media types and non-base64 URIs are refused). `name` is
// what the sender calls the image ("image 2"): errors start with it and say what the URI was,
// "image 2 (image/png data URI): the data is not a PNG image ...". The image's source is
// "image/png data URI".
error load_image_data_uri(const std::string & uri, const image_limits & lim, image & out, const std::string & name = "");

struct ocr_result {
    error       err;
    std::string text;        // lines in Tesseract's reading order, blank lines between blocks
    int32_t     confidence = 0;  // mean word confidence, 0-100
};

// OCR in English. The image is read as grey, light text on dark turned dark on light, pages
// turned 90/180/270 degrees set upright (Tesseract's OSD data) and skewed ones straightened
// (up to 15 degrees); it is scaled so that glyphs are ~20 px high (~30 px lines, what Tesseract
// reads best) within 16 million pixels, so OCR of the largest image stays near 100 MB. Sparse
// layouts (charts, labels) are also read as scattered text, and the better reading is kept.
ocr_result ocr_image(const image & img);

// The most common colours (quantised), as names with shares: "white 71%, black 20%, red 9%".
std::string dominant_colours(const image & img, int n = 3);

// The text that represents an image in a prompt for a model without a projector: size,
// dominant colours and the OCR text, delimited and marked as data so that text inside an
// image is never taken as an instruction. Everything inside is escaped (block_text,
// block_attr), so neither the text nor a file name can close the block or open another.
std::string image_text_block(const image & img, const ocr_result & ocr, size_t max_text = 4000);

}  // namespace muse
