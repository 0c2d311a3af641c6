#pragma once
// Files the front ends take in, checked by perception's rules without the front ends knowing
// perception: an upload (`POST /v1/files`) checked before it is stored, the cap on an image's
// encoded size (for a fetch that must stop past it), and files a command line reads into a
// request before the model loads (`muse ask --image/--data`).
//
//   muse::checked_file f;
//   if (muse::error e = muse::check_upload("sales.csv", bytes, 256u << 20, f)) { ... refused: e.message ... }
//   f.kind;    // "image" or "table"
//   f.format;  // png, jpeg, ... or csv, tsv, json, jsonl
//
//   muse::ask_input in;
//   if (muse::error e = muse::add_image_file(in, "shot.png")) { ... }   // decoded and read now
//
// Thread safety: the functions are reentrant; one ask_input is filled on one thread.

#include "app/assistant.h"
#include "core/error.h"

#include <cstddef>
#include <string>

namespace muse {

// What an upload was found to be.
struct checked_file {
    std::string kind;    // "image" or "table"
    std::string format;  // an image's container (png, jpeg, gif, bmp, webp) or a table's (csv, tsv, json, jsonl)
};

// Checks an uploaded file as a chat will read it, so that a broken file is refused at upload and
// not in a later chat: an image (known by its first bytes) is decoded within `decode_budget`
// bytes of memory (and the image limits); anything else is loaded as a table, its format from
// `name`. The error's message says what is wrong with the file.
error check_upload(const std::string & name, const std::string & bytes, size_t decode_budget, checked_file & out);

// The most bytes an encoded image may have.
size_t max_image_bytes();

// Reads a file into the request's attachments (in.read, made when empty) now, so that a bad
// file fails before anything slow starts. The error's message names the file; ERROR_INTERNAL
// means the failure was not the file's fault.
error add_image_file(ask_input & in, const std::string & path);
error add_table_file(ask_input & in, const std::string & path);

}  // namespace muse
