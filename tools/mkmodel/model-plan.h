// Internal: a model to write = GGUF metadata + the list of tensors to fill with random data.
#pragma once

#include "ggml-cpp.h"
#include "ggml.h"
#include "gguf.h"
#include "mkmodel.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse::mkmodel {

enum class tensor_init {
    RANDOM,  // uniform, standard deviation 0.02 (the usual init scale of transformer weights)
    ONES,    // norm weights: identity scaling keeps activations in a sane range
    ZEROS,
};

struct tensor_spec {
    std::string          name;
    std::vector<int64_t> ne;  // ggml order: ne[0] is the row length
    ggml_type            type = GGML_TYPE_F32;
    tensor_init          init = tensor_init::RANDOM;
};

struct model_plan {
    gguf_context_ptr         meta{ gguf_init_empty() };
    std::vector<tensor_spec> tensors;
    weight_type              type = weight_type::F32;  // resolved, never DEFAULT

    // A weight that is multiplied with activations: stored in the plan's type (Q8_0 only
    // where the row length is a multiple of the block size; F16 otherwise).
    void add_matrix(const std::string & name, std::vector<int64_t> ne);
    // A weight that must not be quantized (convolution kernels, position tables).
    void add_dense(const std::string & name, std::vector<int64_t> ne);
    // Norm weights and biases: always F32, as llama.cpp's own converters store them.
    void add_vector(const std::string & name, int64_t n, tensor_init init);
};

// Shape of the text models of a preset.
struct text_dims {
    int n_embd      = 0;
    int n_layer     = 0;
    int n_head      = 0;
    int n_head_kv   = 0;
    int n_ff        = 0;
    int n_ctx_train = 0;
};

text_dims dims_for(model_preset preset);

// general.file_type value (llama_ftype) that describes the plan's weights.
uint32_t file_type_of(weight_type type);

bool plan_qwen2(const options & opt, model_plan & plan, std::string & error);
bool plan_muse_glimmer(const options & opt, model_plan & plan, std::string & error);
bool plan_mmproj(const options & opt, model_plan & plan, std::string & error);

// Adds the plan's tensors to its metadata and writes the file (via "<path>.tmp" + rename).
bool write_plan(model_plan & plan, const options & opt, std::string & error);

}  // namespace muse::mkmodel
