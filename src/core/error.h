#pragma once
// Muse error codes: expected failures are values, never exceptions across a layer boundary.
// Every layer returns them; the front ends map them to exit codes (cli/) and HTTP statuses
// (server/openai-api).
//
//   if (error e = read_file_capped(path, cap, "image", "resize it", bytes)) {
//       fprintf(stderr, "%s: %s\n", error_code_name(e.code), e.message.c_str());
//   }
//
// Thread safety: plain values; error_code_name is reentrant.

#include <string>

namespace muse {

enum error_code {
    ERROR_NONE = 0,
    ERROR_INVALID_ARGUMENT,   // a request field is out of range or malformed
    ERROR_FILE_NOT_FOUND,     // model / projector path does not exist or is unreadable
    ERROR_NOT_GGUF,           // the file is not a GGUF file (bad magic)
    ERROR_CORRUPT_MODEL,      // GGUF header, metadata or tensor table is damaged or truncated
    ERROR_UNSUPPORTED_ARCH,   // llama.cpp does not know the architecture
    ERROR_MODEL_LOAD,         // any other failure while loading the model
    ERROR_PROJECTOR_LOAD,     // the vision projector failed to load
    ERROR_CONTEXT_OVERFLOW,   // the prompt does not fit in the context window
    ERROR_NO_KV_SLOT,         // llama_decode returned 1: the KV cache is full
    ERROR_DECODE,             // llama_decode failed (invalid batch or fatal)
    ERROR_PARENT_NOT_FOUND,   // fork from a sequence that does not exist
    ERROR_ENGINE_STOPPED,     // the engine shut down before the request finished
    ERROR_BAD_INPUT,          // an attached data file or image is malformed, too large or unsupported
    ERROR_NOT_FOUND,          // no stored object with this id for this user (store/)
    ERROR_STORAGE,            // the data directory is full, read-only or damaged (store/)
    ERROR_UNAVAILABLE,        // a remote backend cannot be reached, timed out or answered 5xx
    ERROR_INTERNAL,
};

const char * error_code_name(error_code code);

struct error {
    error_code  code = ERROR_NONE;
    std::string message;

    explicit operator bool() const { return code != ERROR_NONE; }
};

}  // namespace muse
