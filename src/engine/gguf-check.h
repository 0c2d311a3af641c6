#pragma once
// Checks a text model's GGUF metadata before llama.cpp reads it. llama.cpp trusts much of
// its metadata: a block_count of 0 or 513, a negative norm epsilon, expert counts that do
// not add up or a vocabulary with a duplicated token stop the process on an assertion
// (at load or at the first decode) instead of returning an error. These checks refuse such
// files with one line that names the key, its value and what is allowed.
//
//   gguf_context * ctx = gguf_init_from_file(path, { /*no_alloc =*/ true, nullptr });
//   muse::error err = muse::check_gguf_metadata(ctx, path);
//   if (err) { fprintf(stderr, "%s\n", err.message.c_str()); }
//
// The rules are a table (gguf-check.cpp) drawn from llama.cpp's loader (llama-model.cpp
// load_hparams, llama-vocab.cpp load, ggml's graph asserts): types, ranges, cross-key
// constraints and vocabulary vs tensor shapes. What the table cannot foresee (an
// architecture's own keys) model-probe.h catches by loading the model in a child process.
//
// Thread safety: pure; reads ctx only.

#include "core/error.h"

#include <cstdint>
#include <string>

struct gguf_context;

namespace muse {

// ERROR_CORRUPT_MODEL with "<path>: <key> ..." when a value cannot be loaded safely.
// Architectures without a language model ("clip": projectors) pass.
error check_gguf_metadata(const gguf_context * ctx, const std::string & path);

// The most layers llama.cpp's hyperparameter arrays hold (LLAMA_MAX_LAYERS) and the most
// experts it routes (LLAMA_MAX_EXPERTS), in the pinned llama.cpp.
constexpr uint32_t GGUF_CHECK_MAX_LAYERS  = 512;
constexpr uint32_t GGUF_CHECK_MAX_EXPERTS = 1024;

}  // namespace muse
