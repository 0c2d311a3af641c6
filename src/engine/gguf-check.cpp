#include "gguf-check.h"

#include "gguf.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace muse {

namespace {

// llama.cpp keeps most hyperparameters in uint32_t and computes with int: anything at or
// above 2^31 wraps. No real model comes near (the largest counts are vocabularies of ~2^18).
constexpr uint64_t k_int_max = 0x7fffffff;

// Unsigned hyperparameters: "<arch>.<suffix>" must be a uint32 (or, for per-layer values,
// an array of block_count integers) in [min, max]. The bounds are llama.cpp's where it has
// them (layers, experts) and otherwise far beyond any released model, so that only values
// that would overflow, divide by zero or allocate absurd memory are refused.
struct u32_rule {
    const char * suffix;
    bool         per_layer;
    uint64_t     min;
    uint64_t     max;
};

// clang-format off
const u32_rule k_u32_rules[] = {
    { "block_count",                          false, 1, GGUF_CHECK_MAX_LAYERS  },  // GGML_ASSERT in load_hparams
    { "context_length",                       false, 1, 1u << 24 },
    { "embedding_length",                     false, 1, 1u << 20 },
    { "embedding_length_out",                 false, 0, 1u << 20 },
    { "feed_forward_length",                  true,  0, 1u << 22 },
    { "expert_feed_forward_length",           true,  0, 1u << 22 },
    { "expert_shared_feed_forward_length",    false, 0, 1u << 22 },
    { "expert_count",                         false, 0, GGUF_CHECK_MAX_EXPERTS },  // GGML_ASSERT
    { "expert_used_count",                    true,  0, GGUF_CHECK_MAX_EXPERTS },
    { "expert_shared_count",                  false, 0, GGUF_CHECK_MAX_EXPERTS },
    { "expert_group_count",                   false, 0, GGUF_CHECK_MAX_EXPERTS },
    { "expert_group_used_count",              false, 0, GGUF_CHECK_MAX_EXPERTS },
    { "leading_dense_block_count",            false, 0, GGUF_CHECK_MAX_LAYERS  },
    { "nextn_predict_layers",                 false, 0, GGUF_CHECK_MAX_LAYERS  },
    { "decoder_block_count",                  false, 0, GGUF_CHECK_MAX_LAYERS  },
    { "posnet.block_count",                   false, 0, GGUF_CHECK_MAX_LAYERS  },
    { "convnext.block_count",                 false, 0, GGUF_CHECK_MAX_LAYERS  },
    { "attention.head_count",                 true,  0, 1u << 16 },
    { "attention.head_count_kv",              true,  0, 1u << 16 },
    { "attention.key_length",                 false, 1, 1u << 16 },
    { "attention.value_length",               false, 1, 1u << 16 },
    { "attention.key_length_swa",             false, 1, 1u << 16 },
    { "attention.value_length_swa",           false, 1, 1u << 16 },
    { "attention.key_length_mla",             false, 1, 1u << 16 },
    { "attention.value_length_mla",           false, 1, 1u << 16 },
    { "attention.group_norm_groups",          false, 1, 1u << 16 },  // a divisor
    { "attention.sliding_window",             false, 0, 1u << 24 },
    { "rope.dimension_count",                 false, 0, 1u << 16 },
    { "rope.dimension_count_swa",             false, 0, 1u << 16 },
    { "rope.scaling.original_context_length", false, 0, 1u << 24 },
    { "vocab_size",                           false, 1, 1u << 24 },
    { "wkv.head_size",                        false, 1, 1u << 16 },  // a divisor
    { "ssm.conv_kernel",                      false, 0, 1u << 12 },
    { "ssm.inner_size",                       false, 0, 1u << 20 },
    { "ssm.state_size",                       false, 0, 1u << 16 },
    { "ssm.time_step_rank",                   false, 0, 1u << 16 },
    { "ssm.group_count",                      false, 0, 1u << 16 },
};
// clang-format on

enum float_range {
    FLOAT_EPSILON,   // 0 < x < 1: a norm epsilon (ggml asserts eps >= 0; 0 divides by zero)
    FLOAT_POSITIVE,  // x > 0
    FLOAT_NONNEG,    // x >= 0
};

struct f32_rule {
    const char * suffix;
    float_range  range;
};

// clang-format off
const f32_rule k_f32_rules[] = {
    { "attention.layer_norm_epsilon",     FLOAT_EPSILON  },
    { "attention.layer_norm_rms_epsilon", FLOAT_EPSILON  },
    { "attention.group_norm_epsilon",     FLOAT_EPSILON  },
    { "hyper_connection.epsilon",         FLOAT_EPSILON  },
    { "rope.freq_base",                   FLOAT_POSITIVE },
    { "rope.freq_base_swa",               FLOAT_POSITIVE },
    { "rope.scaling.factor",              FLOAT_NONNEG   },
    { "rope.scale_linear",                FLOAT_NONNEG   },
    { "attn_logit_softcapping",           FLOAT_NONNEG   },
    { "final_logit_softcapping",          FLOAT_NONNEG   },
    { "router_logit_softcapping",         FLOAT_NONNEG   },
};
// clang-format on

// The rope scaling types llama.cpp knows (llama-model.cpp LLAMA_ROPE_SCALING_TYPES); any
// other string fails a GGML_ASSERT.
const char * const k_rope_scaling_types[] = { "none", "linear", "yarn", "longrope" };

std::string fmt_float(double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%g", v);
    return buf;
}

class checker {
  public:
    checker(const gguf_context * ctx, const std::string & path) : ctx(ctx), path(path) {}

    error run();

  private:
    const gguf_context * ctx;
    const std::string &  path;
    std::string          arch;
    uint32_t             n_layer = 0;

    // Key names and values come from the file: control characters would break the one line.
    error fail(const std::string & what) const {
        std::string line = path + ": " + what;
        for (char & c : line) {
            if ((unsigned char) c < 0x20 || c == 0x7f) {
                c = '?';
            }
        }
        return { ERROR_CORRUPT_MODEL, line };
    }

    std::string key(const char * suffix) const { return arch + "." + suffix; }

    error check_generic();
    error check_u32(const u32_rule & r);
    error check_f32(const f32_rule & r);
    error check_layer_counts();
    error check_rope_scaling();
    error check_experts();
    error check_heads();
    error check_vocab();
    error check_templates();

    // Reads an unsigned scalar "<arch>.<suffix>" already checked by the table; def when absent.
    uint64_t u32_or(const char * suffix, uint64_t def) const;
    // The per-layer values of a key that may be a scalar or an array (already checked).
    std::vector<uint64_t> per_layer(const char * suffix, uint64_t def) const;
};

// An integer array element as llama.cpp's get_arr reads it into uint32 (int32 and bool
// arrays are accepted and reinterpreted).
uint64_t int_elem(const gguf_context * ctx, int64_t id, size_t i) {
    const void * data = gguf_get_arr_data(ctx, id);
    switch (gguf_get_arr_type(ctx, id)) {
        case GGUF_TYPE_UINT32: return ((const uint32_t *) data)[i];
        case GGUF_TYPE_INT32:  return (uint32_t) ((const int32_t *) data)[i];
        case GGUF_TYPE_BOOL:   return ((const int8_t *) data)[i] != 0;
        default:               return 0;
    }
}

error checker::run() {
    const int64_t arch_id = gguf_find_key(ctx, "general.architecture");
    if (arch_id < 0) {
        return {};  // model.cpp reports the missing architecture itself
    }
    if (gguf_get_kv_type(ctx, arch_id) != GGUF_TYPE_STRING) {
        return fail(std::string("general.architecture has type ") + gguf_type_name(gguf_get_kv_type(ctx, arch_id)) +
                    "; it must be a string");
    }
    arch = gguf_get_val_str(ctx, arch_id);
    if (arch.empty()) {
        return fail("general.architecture is empty");
    }
    if (arch == "clip") {
        return {};  // a projector: no language-model hyperparameters or vocabulary
    }
    // Without a single "<arch>." key this is an architecture llama.cpp does not know (or
    // not a model at all): the loader names that better than a missing block_count would.
    bool any = false;
    for (int64_t i = 0; i < gguf_get_n_kv(ctx) && !any; ++i) {
        any = std::string_view(gguf_get_key(ctx, i)).substr(0, arch.size() + 1) == arch + ".";
    }
    if (!any) {
        return {};
    }

    // block_count first: per-layer arrays are read against it.
    for (const auto & r : k_u32_rules) {
        if (std::string_view(r.suffix) == "block_count") {
            if (error e = check_u32(r)) {
                return e;
            }
        }
    }
    if (gguf_find_key(ctx, key("block_count").c_str()) < 0) {
        return fail(key("block_count") + " is missing; llama.cpp needs the number of layers (1.." +
                    std::to_string(GGUF_CHECK_MAX_LAYERS) + ")");
    }
    n_layer = (uint32_t) u32_or("block_count", 0);
    for (const auto & r : k_u32_rules) {
        if (error e = check_u32(r)) {
            return e;
        }
    }
    for (const auto & r : k_f32_rules) {
        if (error e = check_f32(r)) {
            return e;
        }
    }
    if (error e = check_generic()) {
        return e;
    }
    if (error e = check_layer_counts()) {
        return e;
    }
    if (error e = check_rope_scaling()) {
        return e;
    }
    if (error e = check_experts()) {
        return e;
    }
    if (error e = check_heads()) {
        return e;
    }
    if (error e = check_vocab()) {
        return e;
    }
    return check_templates();
}

// Every number under "<arch>.": floats finite (no hyperparameter is NaN or infinite), and
// unsigned integers below 2^31 (llama.cpp computes with int).
error checker::check_generic() {
    const std::string prefix = arch + ".";
    for (int64_t i = 0; i < gguf_get_n_kv(ctx); ++i) {
        const char * name = gguf_get_key(ctx, i);
        if (std::string_view(name).substr(0, prefix.size()) != prefix) {
            continue;
        }
        const gguf_type t = gguf_get_kv_type(ctx, i);
        if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) {
            const double v = t == GGUF_TYPE_FLOAT32 ? gguf_get_val_f32(ctx, i) : gguf_get_val_f64(ctx, i);
            if (!std::isfinite(v)) {
                return fail(std::string(name) + " is " + fmt_float(v) + "; it must be a finite number");
            }
        } else if (t == GGUF_TYPE_ARRAY && gguf_get_arr_type(ctx, i) == GGUF_TYPE_FLOAT32) {
            const float * v = (const float *) gguf_get_arr_data(ctx, i);
            for (size_t j = 0; j < gguf_get_arr_n(ctx, i); ++j) {
                if (!std::isfinite(v[j])) {
                    return fail(std::string(name) + "[" + std::to_string(j) + "] is " + fmt_float(v[j]) +
                                "; it must be a finite number");
                }
            }
        } else if (t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64) {
            const uint64_t v = t == GGUF_TYPE_UINT32 ? gguf_get_val_u32(ctx, i) : gguf_get_val_u64(ctx, i);
            if (v > k_int_max) {
                return fail(std::string(name) + " is " + std::to_string(v) + "; values above " +
                            std::to_string(k_int_max) + " overflow llama.cpp");
            }
        }
    }
    return {};
}

error checker::check_u32(const u32_rule & r) {
    const std::string k  = key(r.suffix);
    const int64_t     id = gguf_find_key(ctx, k.c_str());
    if (id < 0) {
        return {};
    }
    const std::string range = std::to_string(r.min) + ".." + std::to_string(r.max);
    const gguf_type   t     = gguf_get_kv_type(ctx, id);
    if (t == GGUF_TYPE_ARRAY && r.per_layer) {
        const gguf_type et = gguf_get_arr_type(ctx, id);
        if (et != GGUF_TYPE_UINT32 && et != GGUF_TYPE_INT32 && et != GGUF_TYPE_BOOL) {
            return fail(k + " is an array of " + gguf_type_name(et) + "; it must hold one uint32 per layer");
        }
        const size_t n = gguf_get_arr_n(ctx, id);
        if (n != n_layer) {
            return fail(k + " has " + std::to_string(n) + " values for " + std::to_string(n_layer) +
                        " layers; it must have one per layer");
        }
        for (size_t i = 0; i < n; ++i) {
            const uint64_t v = int_elem(ctx, id, i);
            if (v < r.min || v > r.max) {
                return fail(k + "[" + std::to_string(i) + "] is " + std::to_string(v) + "; allowed: " + range);
            }
        }
        return {};
    }
    if (t != GGUF_TYPE_UINT32) {
        return fail(k + " has type " + gguf_type_name(t) + "; it must be a uint32" +
                    (r.per_layer ? " (or an array of one per layer)" : "") + " in " + range);
    }
    const uint64_t v = gguf_get_val_u32(ctx, id);
    if (v < r.min || v > r.max) {
        return fail(k + " is " + std::to_string(v) + "; allowed: " + range);
    }
    return {};
}

error checker::check_f32(const f32_rule & r) {
    const std::string k  = key(r.suffix);
    const int64_t     id = gguf_find_key(ctx, k.c_str());
    if (id < 0) {
        return {};
    }
    const gguf_type t = gguf_get_kv_type(ctx, id);
    if (t != GGUF_TYPE_FLOAT32) {
        return fail(k + " has type " + gguf_type_name(t) + "; it must be a float32");
    }
    const float v = gguf_get_val_f32(ctx, id);
    switch (r.range) {
        case FLOAT_EPSILON:
            if (!(v > 0.0f && v < 1.0f)) {
                return fail(k + " is " + fmt_float(v) + "; a norm epsilon must be greater than 0 and less than 1");
            }
            break;
        case FLOAT_POSITIVE:
            if (!(v > 0.0f) || !std::isfinite(v)) {
                return fail(k + " is " + fmt_float(v) + "; it must be a finite number greater than 0");
            }
            break;
        case FLOAT_NONNEG:
            if (!(v >= 0.0f) || !std::isfinite(v)) {
                return fail(k + " is " + fmt_float(v) + "; it must be a finite number of at least 0");
            }
            break;
    }
    return {};
}

// Counts of special layers are at most the layer count (GGML_ASSERTs in load_hparams).
error checker::check_layer_counts() {
    for (const char * suffix : { "nextn_predict_layers", "leading_dense_block_count", "posnet.block_count",
                                 "convnext.block_count" }) {
        const uint64_t n = u32_or(suffix, 0);
        if (n > n_layer) {
            return fail(key(suffix) + " is " + std::to_string(n) + "; it cannot exceed " + key("block_count") + " (" +
                        std::to_string(n_layer) + ")");
        }
    }
    return {};
}

error checker::check_rope_scaling() {
    const std::string k  = key("rope.scaling.type");
    const int64_t     id = gguf_find_key(ctx, k.c_str());
    if (id < 0) {
        return {};
    }
    if (gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) {
        return fail(k + " has type " + gguf_type_name(gguf_get_kv_type(ctx, id)) + "; it must be a string");
    }
    const std::string v = gguf_get_val_str(ctx, id);
    for (const char * known : k_rope_scaling_types) {
        if (v == known) {
            return {};
        }
    }
    return fail(k + " is '" + v + "'; allowed: none, linear, yarn, longrope");
}

// The expert constraints llama.cpp asserts in load_hparams, in its order.
error checker::check_experts() {
    const uint64_t n_expert  = u32_or("expert_count", 0);
    const uint64_t n_groups  = u32_or("expert_group_count", 0);
    const uint64_t n_gr_used = u32_or("expert_group_used_count", 0);
    uint64_t       n_used    = 0;
    for (uint64_t v : per_layer("expert_used_count", 0)) {
        n_used = std::max(n_used, v);
    }
    const std::string used = key("expert_used_count") + " is " + std::to_string(n_used);
    if (n_used > n_expert) {
        return fail(used + " but " + key("expert_count") + " is " + std::to_string(n_expert) +
                    "; a layer cannot use more experts than it has");
    }
    if (n_expert == 0) {
        if (n_groups != 0) {
            return fail(key("expert_group_count") + " is " + std::to_string(n_groups) + " in a model without experts");
        }
        return {};
    }
    if (n_used == 0) {
        return fail(key("expert_count") + " is " + std::to_string(n_expert) + " but " + used +
                    "; a model with experts must use at least one");
    }
    if (n_groups >= n_expert) {
        return fail(key("expert_group_count") + " is " + std::to_string(n_groups) + "; it must be less than " +
                    key("expert_count") + " (" + std::to_string(n_expert) + ")");
    }
    if (n_groups > 1) {
        if (n_expert % n_groups != 0) {
            return fail(key("expert_count") + " (" + std::to_string(n_expert) + ") is not a multiple of " +
                        key("expert_group_count") + " (" + std::to_string(n_groups) + ")");
        }
        if (n_gr_used == 0 || n_gr_used >= n_groups) {
            return fail(key("expert_group_used_count") + " is " + std::to_string(n_gr_used) + "; allowed: 1.." +
                        std::to_string(n_groups - 1));
        }
    }
    return {};
}

// Attention shapes the graph asserts on: query heads must split evenly over the KV heads
// (ggml_mul_mat broadcast), heads must not be wider than the embedding allows, and rotary
// dimensions must fit in a head.
error checker::check_heads() {
    const std::vector<uint64_t> n_head    = per_layer("attention.head_count", 0);
    const std::vector<uint64_t> n_head_kv = per_layer("attention.head_count_kv", UINT64_MAX);
    for (uint32_t il = 0; il < n_layer; ++il) {
        const uint64_t h  = n_head[il];
        const uint64_t kv = n_head_kv[il] == UINT64_MAX ? h : n_head_kv[il];
        if (h > 0 && kv > 0 && (kv > h || h % kv != 0)) {
            return fail(key("attention.head_count_kv") + " is " + std::to_string(kv) + " for layer " +
                        std::to_string(il) + " with " + std::to_string(h) + " query heads; it must divide " +
                        key("attention.head_count"));
        }
    }
    // llama.cpp derives the head size from layer 0 (hparams.n_head()).
    if (n_layer == 0 || n_head[0] == 0) {
        return {};
    }
    const uint64_t n_embd = u32_or("embedding_length", 0);
    const uint64_t head_k = u32_or("attention.key_length", n_embd / n_head[0]);
    if (head_k == 0) {
        return fail(key("attention.head_count") + " is " + std::to_string(n_head[0]) + " but " +
                    key("embedding_length") + " is " + std::to_string(n_embd) + ": heads of size 0");
    }
    const int64_t rot = gguf_find_key(ctx, key("rope.dimension_count").c_str());
    if (rot >= 0) {
        const uint64_t n_rot = gguf_get_val_u32(ctx, rot);
        if (n_rot > head_k || n_rot % 2 != 0) {
            return fail(key("rope.dimension_count") + " is " + std::to_string(n_rot) +
                        "; it must be even and at most the head size (" + std::to_string(head_k) + ")");
        }
    }
    return {};
}

// The vocabulary: llama.cpp asserts that no token string repeats, and sizes the embeddings
// by it (a mismatch is refused here with both numbers instead of a shape error).
error checker::check_vocab() {
    const int64_t model_id = gguf_find_key(ctx, "tokenizer.ggml.model");
    if (model_id >= 0 && gguf_get_kv_type(ctx, model_id) == GGUF_TYPE_STRING &&
        std::string_view(gguf_get_val_str(ctx, model_id)) == "none") {
        return {};  // no tokenizer: llama.cpp makes <arch>.vocab_size placeholder tokens
    }
    const int64_t id = gguf_find_key(ctx, "tokenizer.ggml.tokens");
    if (id < 0) {
        return fail("tokenizer.ggml.tokens is missing; a language model needs its vocabulary");
    }
    if (gguf_get_kv_type(ctx, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(ctx, id) != GGUF_TYPE_STRING) {
        return fail("tokenizer.ggml.tokens must be an array of strings");
    }
    const size_t n_tokens = gguf_get_arr_n(ctx, id);
    if (n_tokens == 0 || n_tokens > (1u << 24)) {
        return fail("tokenizer.ggml.tokens has " + std::to_string(n_tokens) + " tokens; allowed: 1.." +
                    std::to_string(1u << 24));
    }
    std::unordered_set<std::string_view> seen;
    std::vector<std::string>             renamed;  // llama.cpp names empty tokens "[EMPTY_<i>]"
    seen.reserve(n_tokens);
    for (size_t i = 0; i < n_tokens; ++i) {
        if (*gguf_get_arr_str(ctx, id, i) == '\0') {
            renamed.push_back("[EMPTY_" + std::to_string(i) + "]");
        }
    }
    size_t n_empty = 0;
    for (size_t i = 0; i < n_tokens; ++i) {
        std::string_view word = gguf_get_arr_str(ctx, id, i);
        if (word.empty()) {
            word = renamed[n_empty++];
        }
        if (!seen.insert(word).second) {
            const std::string shown(word.substr(0, 40));
            return fail("tokenizer.ggml.tokens lists token '" + shown + "' twice (again at id " + std::to_string(i) +
                        "); token strings must be unique");
        }
    }
    // Every token id needs a row of token_embd (an id past its end aborts the first decode
    // that meets it); more rows are allowed only where <arch>.vocab_size sizes the table.
    if (const int64_t embd = gguf_find_tensor(ctx, "token_embd.weight"); embd >= 0) {
        const uint64_t rows = (uint64_t) gguf_get_tensor_ne(ctx, embd)[1];
        if (rows < n_tokens || (rows > n_tokens && rows != u32_or("vocab_size", 0))) {
            return fail("the vocabulary has " + std::to_string(n_tokens) + " tokens but token_embd.weight has " +
                        std::to_string(rows) + " rows; they must match");
        }
    }
    return {};
}

// llama.cpp turns any metadata value into text, so a non-string template would be used as
// a template of digits.
error checker::check_templates() {
    const std::string_view prefix = "tokenizer.chat_template";
    for (int64_t i = 0; i < gguf_get_n_kv(ctx); ++i) {
        const std::string_view name = gguf_get_key(ctx, i);
        if (name.substr(0, prefix.size()) != prefix ||
            (name.size() > prefix.size() && name[prefix.size()] != '.')) {
            continue;
        }
        if (gguf_get_kv_type(ctx, i) != GGUF_TYPE_STRING) {
            return fail(std::string(name) + " has type " + gguf_type_name(gguf_get_kv_type(ctx, i)) +
                        "; a chat template must be a string");
        }
    }
    return {};
}

uint64_t checker::u32_or(const char * suffix, uint64_t def) const {
    const int64_t id = gguf_find_key(ctx, key(suffix).c_str());
    if (id < 0 || gguf_get_kv_type(ctx, id) != GGUF_TYPE_UINT32) {
        return def;
    }
    return gguf_get_val_u32(ctx, id);
}

std::vector<uint64_t> checker::per_layer(const char * suffix, uint64_t def) const {
    std::vector<uint64_t> out(n_layer, def);
    const int64_t         id = gguf_find_key(ctx, key(suffix).c_str());
    if (id < 0) {
        return out;
    }
    if (gguf_get_kv_type(ctx, id) == GGUF_TYPE_ARRAY) {
        for (uint32_t i = 0; i < n_layer && i < gguf_get_arr_n(ctx, id); ++i) {
            out[i] = int_elem(ctx, id, i);
        }
    } else if (gguf_get_kv_type(ctx, id) == GGUF_TYPE_UINT32) {
        std::fill(out.begin(), out.end(), (uint64_t) gguf_get_val_u32(ctx, id));
    }
    return out;
}

}  // namespace

error check_gguf_metadata(const gguf_context * ctx, const std::string & path) {
    return checker(ctx, path).run();
}

}  // namespace muse
