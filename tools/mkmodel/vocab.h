// Internal: real tokenizers for random models, copied from llama.cpp's models/ggml-vocab-*.gguf.
#pragma once

#include "ggml-cpp.h"
#include "gguf.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse::mkmodel {

// Values of tokenizer.ggml.token_type (llama_token_type in llama.h).
enum token_kind : int32_t {
    TOKEN_KIND_NORMAL       = 1,
    TOKEN_KIND_CONTROL      = 3,
    TOKEN_KIND_USER_DEFINED = 4,
};

struct special_token {
    std::string text;
    token_kind  kind = TOKEN_KIND_CONTROL;
};

// A tokenizer read from a vocab file, editable before it is stored in a model.
struct vocab {
    std::string              path;
    gguf_context_ptr         file;  // metadata of the vocab file
    std::vector<std::string> tokens;
    std::vector<int32_t>     types;

    int32_t find(const std::string & text) const;  // -1 when absent
};

bool vocab_load(const std::string & path, vocab & v, std::string & error);

// Gives the slot `id` (which must hold a placeholder "[PAD...]" token) to `tok`, so the
// token keeps the id it has in the real model family.
bool vocab_put(vocab & v, int32_t id, const special_token & tok, std::string & error);

// Appends `tok` (which must not exist yet) and returns its id.
int32_t vocab_append(vocab & v, const special_token & tok);

// Stores every tokenizer.* key of the vocab file in dst, with v's tokens and types instead of
// the file's, and without the file's chat template. Special-token ids are kept; callers
// override the ones their family defines differently.
void vocab_store(const vocab & v, gguf_context * dst);

bool read_text_file(const std::string & path, std::string & text, std::string & error);

}  // namespace muse::mkmodel
