#pragma once
// Base64 decoding (RFC 4648), for data: URIs. Either alphabet is accepted (standard "+/" or
// URL-safe "-_"), not a mix of the two; padding is optional, but after the first '=' only '='
// may follow. Bits of an incomplete last group are dropped, as most decoders do.
//
//   std::string bytes;
//   if (!muse::base64_decode("aGVsbG8=", bytes)) { /* a character outside the alphabet */ }
//   // bytes == "hello"
//
// Thread safety: reentrant.

#include <string>
#include <string_view>

namespace muse {

// Decodes `text` into `out` (replacing it). False when a character is outside the alphabet
// (whitespace included; "+/" and "-_" mixed) or something other than '=' follows the padding;
// `out` is then cleared.
bool base64_decode(std::string_view text, std::string & out);

// The standard alphabet with padding ("hello" -> "aGVsbG8=").
std::string base64_encode(std::string_view bytes);

}  // namespace muse
