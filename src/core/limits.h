#pragma once
// Limits on untrusted input that more than one layer checks: one definition each.
// (Per-request caps set by flags live in their layers' option structs.)

#include <cstddef>

namespace muse {

// JSON schemas (response_format, tool parameters, --json-schema): llama.cpp's
// json_schema_to_grammar recurses once or twice per level.
constexpr int    k_max_schema_depth = 64;
constexpr size_t k_max_schema_bytes = 64u << 10;
constexpr int    k_max_schema_items = 1024;  // array elements and object members, all levels

// Any other JSON from outside: request bodies, uploaded tables, model-written plans and tool
// arguments. Values are copied and dumped recursively, so nesting is capped before parsing.
constexpr int k_max_json_depth = 128;

// A prompt's text: far beyond any context, it bounds the tokenizer's work and memory. (Prompts
// that the context cannot hold are refused from their size before tokenizing when the bytes
// prove it: see engine::submit.)
constexpr size_t k_max_prompt_bytes = 64u << 20;

}  // namespace muse
