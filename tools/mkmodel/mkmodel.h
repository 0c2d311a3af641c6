// muse-mkmodel: deterministic random-weight GGUF models for tests and benchmarks.
//
// Nothing here can download weights, so tests and benchmarks use models whose weights come
// from a seeded PRNG and whose tokenizer is a real one copied from llama.cpp's
// models/ggml-vocab-*.gguf. Text is meaningless, but every code path (tokenizer, chat
// template, reasoning/tool parsing, decode, vision projector) is the real one.
//
//     muse::mkmodel::options opt;
//     opt.family   = muse::mkmodel::model_family::MUSE_GLIMMER;
//     opt.out_path = dir + "/glimmer.gguf";
//     std::string error;
//     if (!muse::mkmodel::write_model(opt, error)) { FAIL() << error; }
//
// Same options => byte-identical file. The file is written under a temporary name of the process and renamed
// on success, so a failed run never leaves a truncated model behind.
//
// Thread safety: write_model() keeps no global state; concurrent calls with different
// out_path are safe.

#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace muse::mkmodel {

enum class model_family {
    QWEN2,         // architecture "qwen2", Qwen2 vocabulary, Qwen3 chat template (<think> on/off)
    MUSE_GLIMMER,  // architecture "muse-glimmer", Llama-3 BPE vocabulary + Glimmer control tokens
    MMPROJ,        // LLaVA-style vision projector (CLIP ViT + 2-layer MLP) for libmtmd
};

enum class model_preset {
    TINY,        // 85-140 MB in F32 (the real vocabulary dominates), for unit tests
    BENCH_0_5B,  // Qwen2-0.5B dimensions, for throughput benchmarks
};

enum class weight_type {
    DEFAULT,  // TINY: F32 (batch-invariant greedy decoding on CPU), BENCH_0_5B: Q8_0
    F32,
    F16,
    Q8_0,  // 2-D weights whose rows are a multiple of 32; norms and biases stay F32
};

struct options {
    model_family                family = model_family::QWEN2;
    model_preset                preset = model_preset::TINY;
    weight_type                 type   = weight_type::DEFAULT;
    uint64_t                    seed   = 42;
    std::string                 out_path;
    // llama.cpp's models/ folder (ggml-vocab-*.gguf, templates/); empty = default_vocab_dir().
    std::string                 vocab_dir;
    // MMPROJ only: embedding size of the text model to pair with; 0 = the preset's text model.
    int                         n_embd_text = 0;
    // Text models: a chat template file to store instead of the family's; empty = the family's.
    std::string                 template_path;
    // Called now and then with the fraction written so far (0..1); may be empty.
    std::function<void(double)> progress;
};

// The models/ folder of the llama.cpp checkout this build uses.
const char * default_vocab_dir();

// Embedding size of the text models of a preset (what an MMPROJ of that preset pairs with).
int text_n_embd(model_preset preset);

// The type a model of this preset gets for `type` (resolves DEFAULT).
weight_type resolve_type(model_preset preset, weight_type type);

// Writes the model described by opt. On failure returns false and sets error to one line
// naming what was wrong; no file is left at out_path.
bool write_model(const options & opt, std::string & error);

const char * family_name(model_family family);
const char * preset_name(model_preset preset);
const char * type_name(weight_type type);

}  // namespace muse::mkmodel
