// The text model families: qwen2 and muse-glimmer. Keys and tensor shapes follow what
// llama.cpp's loaders read (src/models/qwen2.cpp, src/models/muse-glimmer.cpp) and what
// tests/test-llama-archs.cpp sets for random models of these architectures.
#include "model-plan.h"
#include "vocab.h"

#include <string>
#include <vector>

namespace muse::mkmodel {

namespace {

std::string key(const char * arch, const char * suffix) {
    return std::string(arch) + "." + suffix;
}

std::string blk(int il, const char * name) {
    return "blk." + std::to_string(il) + "." + name;
}

void set_general(model_plan & plan, const options & opt, const char * arch) {
    gguf_context *    m    = plan.meta.get();
    const std::string name = std::string("muse-mkmodel ") + family_name(opt.family) + " " + preset_name(opt.preset);
    const std::string desc =
        "random weights (seed " + std::to_string(opt.seed) + "), generated for tests and benchmarks";
    gguf_set_val_str(m, "general.architecture", arch);
    gguf_set_val_str(m, "general.name", name.c_str());
    gguf_set_val_str(m, "general.description", desc.c_str());
    gguf_set_val_u32(m, "general.file_type", file_type_of(plan.type));
}

void set_dims(model_plan & plan, const char * arch, const text_dims & d) {
    gguf_context * m = plan.meta.get();
    gguf_set_val_u32(m, key(arch, "context_length").c_str(), d.n_ctx_train);
    gguf_set_val_u32(m, key(arch, "embedding_length").c_str(), d.n_embd);
    gguf_set_val_u32(m, key(arch, "block_count").c_str(), d.n_layer);
    gguf_set_val_u32(m, key(arch, "feed_forward_length").c_str(), d.n_ff);
    gguf_set_val_u32(m, key(arch, "attention.head_count").c_str(), d.n_head);
    gguf_set_val_u32(m, key(arch, "attention.head_count_kv").c_str(), d.n_head_kv);
}

bool set_template(model_plan & plan, const options & opt, const char * file, std::string & error) {
    std::string text;
    if (!read_text_file(opt.template_path.empty() ? opt.vocab_dir + "/templates/" + file : opt.template_path, text, error)) {
        return false;
    }
    gguf_set_val_str(plan.meta.get(), "tokenizer.chat_template", text.c_str());
    return true;
}

void set_eos_eot(model_plan & plan, int32_t eos, int32_t eot) {
    gguf_set_val_u32(plan.meta.get(), "tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
    gguf_set_val_u32(plan.meta.get(), "tokenizer.ggml.eot_token_id", static_cast<uint32_t>(eot));
}

// Qwen3's added tokens at their real ids (151646..151668), which the qwen2 vocab file holds as
// [PAD] placeholders. <think>, </think>, <tool_call> etc. are USER_DEFINED, as in converted
// Qwen3 models, so they detokenize as text for the reasoning/tool-call parsers. The FIM tokens
// are USER_DEFINED in Qwen's files too, but llama.cpp forces them to CONTROL with a warning
// on every load; storing them as CONTROL gives the same model without the noise.
const std::vector<special_token> & qwen3_added_tokens() {
    // clang-format off
    static const std::vector<special_token> tokens = {
        { "<|object_ref_start|>", TOKEN_KIND_CONTROL      },  // 151646
        { "<|object_ref_end|>",   TOKEN_KIND_CONTROL      },  // 151647
        { "<|box_start|>",        TOKEN_KIND_CONTROL      },  // 151648
        { "<|box_end|>",          TOKEN_KIND_CONTROL      },  // 151649
        { "<|quad_start|>",       TOKEN_KIND_CONTROL      },  // 151650
        { "<|quad_end|>",         TOKEN_KIND_CONTROL      },  // 151651
        { "<|vision_start|>",     TOKEN_KIND_CONTROL      },  // 151652
        { "<|vision_end|>",       TOKEN_KIND_CONTROL      },  // 151653
        { "<|vision_pad|>",       TOKEN_KIND_CONTROL      },  // 151654
        { "<|image_pad|>",        TOKEN_KIND_CONTROL      },  // 151655
        { "<|video_pad|>",        TOKEN_KIND_CONTROL      },  // 151656
        { "<tool_call>",          TOKEN_KIND_USER_DEFINED },  // 151657
        { "</tool_call>",         TOKEN_KIND_USER_DEFINED },  // 151658
        { "<|fim_prefix|>",       TOKEN_KIND_CONTROL      },  // 151659
        { "<|fim_middle|>",       TOKEN_KIND_CONTROL      },  // 151660
        { "<|fim_suffix|>",       TOKEN_KIND_CONTROL      },  // 151661
        { "<|fim_pad|>",          TOKEN_KIND_CONTROL      },  // 151662
        { "<|repo_name|>",        TOKEN_KIND_CONTROL      },  // 151663
        { "<|file_sep|>",         TOKEN_KIND_CONTROL      },  // 151664
        { "<tool_response>",      TOKEN_KIND_USER_DEFINED },  // 151665
        { "</tool_response>",     TOKEN_KIND_USER_DEFINED },  // 151666
        { "<think>",              TOKEN_KIND_USER_DEFINED },  // 151667
        { "</think>",             TOKEN_KIND_USER_DEFINED },  // 151668
    };
    // clang-format on
    return tokens;
}

constexpr int32_t QWEN_ENDOFTEXT   = 151643;
constexpr int32_t QWEN_IM_START    = 151644;
constexpr int32_t QWEN_IM_END      = 151645;
constexpr int32_t QWEN_FIRST_ADDED = 151646;

// Muse Glimmer's message framing (<|start|>, <|message|>, <|eom|>, <|eot|>) and media
// placeholders are special tokens of the real model: CONTROL. (llama.cpp turns <|start|> and
// <|message|> into USER_DEFINED on load, as for gpt-oss, so they detokenize as text; <|eom|> and
// <|eot|> stay CONTROL and must be rendered as common/chat's preserved tokens.) The ATEM
// tool-call markup is what common/chat lists as preserved tokens; it must read back as text
// for the tool-call parser, hence USER_DEFINED.
const std::vector<special_token> & glimmer_added_tokens() {
    // clang-format off
    static const std::vector<special_token> tokens = {
        { "<|start|>",              TOKEN_KIND_CONTROL      },
        { "<|message|>",            TOKEN_KIND_CONTROL      },
        { "<|eom|>",                TOKEN_KIND_CONTROL      },
        { "<|eot|>",                TOKEN_KIND_CONTROL      },
        { "<|patch|>",              TOKEN_KIND_CONTROL      },
        { "<|video|>",              TOKEN_KIND_CONTROL      },
        { "<atem:function_calls>",  TOKEN_KIND_USER_DEFINED },
        { "</atem:function_calls>", TOKEN_KIND_USER_DEFINED },
        { "<atem:invoke",           TOKEN_KIND_USER_DEFINED },
        { "</atem:invoke>",         TOKEN_KIND_USER_DEFINED },
        { "<atem:parameter",        TOKEN_KIND_USER_DEFINED },
        { "</atem:parameter>",      TOKEN_KIND_USER_DEFINED },
    };
    // clang-format on
    return tokens;
}

}  // namespace

bool plan_qwen2(const options & opt, model_plan & plan, std::string & error) {
    const char *    arch = "qwen2";
    const text_dims d    = dims_for(opt.preset);

    vocab v;
    if (!vocab_load(opt.vocab_dir + "/ggml-vocab-qwen2.gguf", v, error)) {
        return false;
    }
    if (v.find("<|im_start|>") != QWEN_IM_START || v.find("<|im_end|>") != QWEN_IM_END ||
        v.find("<|endoftext|>") != QWEN_ENDOFTEXT) {
        error = v.path +
                ": <|endoftext|>, <|im_start|>, <|im_end|> are not at ids 151643..151645 (unexpected vocabulary file)";
        return false;
    }
    int32_t id = QWEN_FIRST_ADDED;
    for (const special_token & tok : qwen3_added_tokens()) {
        if (!vocab_put(v, id++, tok, error)) {
            return false;
        }
    }

    set_general(plan, opt, arch);
    set_dims(plan, arch, d);
    gguf_set_val_f32(plan.meta.get(), key(arch, "rope.freq_base").c_str(), 1000000.0f);
    gguf_set_val_f32(plan.meta.get(), key(arch, "attention.layer_norm_rms_epsilon").c_str(), 1e-6f);

    vocab_store(v, plan.meta.get());
    // As in Qwen's instruct models: generation ends at <|im_end|>; no BOS is prepended.
    set_eos_eot(plan, QWEN_IM_END, QWEN_IM_END);
    gguf_set_val_bool(plan.meta.get(), "tokenizer.ggml.add_bos_token", false);
    // Qwen3's template: the Qwen2.5 one has no reasoning switch, and the architecture does
    // not influence how common/chat formats or parses a conversation.
    if (!set_template(plan, opt, "Qwen-Qwen3-0.6B.jinja", error)) {
        return false;
    }

    const int64_t n_vocab = static_cast<int64_t>(v.tokens.size());
    const int64_t n_embd  = d.n_embd;
    const int64_t n_kv    = static_cast<int64_t>(d.n_embd / d.n_head) * d.n_head_kv;

    // Tied embeddings (no output.weight), as in Qwen2-0.5B: llama.cpp reuses token_embd.
    plan.add_matrix("token_embd.weight", { n_embd, n_vocab });
    plan.add_vector("output_norm.weight", n_embd, tensor_init::ONES);
    for (int il = 0; il < d.n_layer; ++il) {
        plan.add_vector(blk(il, "attn_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_matrix(blk(il, "attn_q.weight"), { n_embd, n_embd });
        plan.add_vector(blk(il, "attn_q.bias"), n_embd, tensor_init::RANDOM);
        plan.add_matrix(blk(il, "attn_k.weight"), { n_embd, n_kv });
        plan.add_vector(blk(il, "attn_k.bias"), n_kv, tensor_init::RANDOM);
        plan.add_matrix(blk(il, "attn_v.weight"), { n_embd, n_kv });
        plan.add_vector(blk(il, "attn_v.bias"), n_kv, tensor_init::RANDOM);
        plan.add_matrix(blk(il, "attn_output.weight"), { n_embd, n_embd });
        plan.add_vector(blk(il, "ffn_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_matrix(blk(il, "ffn_gate.weight"), { n_embd, d.n_ff });
        plan.add_matrix(blk(il, "ffn_down.weight"), { d.n_ff, n_embd });
        plan.add_matrix(blk(il, "ffn_up.weight"), { n_embd, d.n_ff });
    }
    return true;
}

bool plan_muse_glimmer(const options & opt, model_plan & plan, std::string & error) {
    const char *    arch = "muse-glimmer";
    const text_dims d    = dims_for(opt.preset);

    // muse-glimmer's converter writes a GPT-2-style BPE tokenizer (no dedicated pre-tokenizer);
    // Llama 3's is the one of Meta's lineage that llama.cpp ships.
    vocab v;
    if (!vocab_load(opt.vocab_dir + "/ggml-vocab-llama-bpe.gguf", v, error)) {
        return false;
    }
    int32_t eot = -1;
    for (const special_token & tok : glimmer_added_tokens()) {
        if (v.find(tok.text) >= 0) {
            error = v.path + " already has a token " + tok.text + " (unexpected vocabulary file)";
            return false;
        }
        const int32_t id = vocab_append(v, tok);
        if (tok.text == "<|eot|>") {
            eot = id;
        }
    }

    set_general(plan, opt, arch);
    set_dims(plan, arch, d);
    gguf_context * m        = plan.meta.get();
    const int      head_dim = d.n_embd / d.n_head;
    gguf_set_val_u32(m, key(arch, "attention.key_length").c_str(), head_dim);
    gguf_set_val_u32(m, key(arch, "attention.value_length").c_str(), head_dim);
    gguf_set_val_f32(m, key(arch, "rope.freq_base").c_str(), 500000.0f);
    gguf_set_val_f32(m, key(arch, "attention.layer_norm_rms_epsilon").c_str(), 1e-5f);
    gguf_set_val_f32(m, key(arch, "logit_scale").c_str(), 1.0f);
    gguf_set_val_f32(m, key(arch, "final_logit_softcapping").c_str(), 30.0f);
    // Small enough that tests with a few hundred tokens run past the window.
    gguf_set_val_u32(m, key(arch, "attention.sliding_window").c_str(), opt.preset == model_preset::TINY ? 256 : 1024);
    // As the converter writes it: one bool per layer. Three sliding layers then one full one
    // (llama.cpp's default period for this architecture); the tiny model gets one of each.
    std::vector<int8_t> is_swa(static_cast<size_t>(d.n_layer));
    for (int il = 0; il < d.n_layer; ++il) {
        is_swa[static_cast<size_t>(il)] = d.n_layer < 4 ? (il % 2 == 0) : (il % 4 != 3);
    }
    gguf_set_arr_data(m, key(arch, "attention.sliding_window_pattern").c_str(), GGUF_TYPE_BOOL, is_swa.data(),
                      is_swa.size());

    vocab_store(v, m);
    // <|eot|> ends the assistant's turn. <|eom|> must not be an end-of-generation token: it
    // closes the reasoning message (to=self) after which the model goes on with its answer.
    set_eos_eot(plan, eot, eot);
    gguf_set_val_bool(m, "tokenizer.ggml.add_bos_token", true);
    if (!set_template(plan, opt, "muse-glimmer.jinja", error)) {
        return false;
    }

    const int64_t n_vocab = static_cast<int64_t>(v.tokens.size());
    const int64_t n_embd  = d.n_embd;
    const int64_t n_q     = static_cast<int64_t>(head_dim) * d.n_head;
    const int64_t n_kv    = static_cast<int64_t>(head_dim) * d.n_head_kv;

    plan.add_matrix("token_embd.weight", { n_embd, n_vocab });
    plan.add_vector("output_norm.weight", n_embd, tensor_init::ONES);
    plan.add_matrix("output.weight", { n_embd, n_vocab });
    for (int il = 0; il < d.n_layer; ++il) {
        plan.add_vector(blk(il, "attn_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_vector(blk(il, "post_attention_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_matrix(blk(il, "attn_q.weight"), { n_embd, n_q });
        plan.add_matrix(blk(il, "attn_k.weight"), { n_embd, n_kv });
        plan.add_matrix(blk(il, "attn_v.weight"), { n_embd, n_kv });
        plan.add_matrix(blk(il, "attn_output.weight"), { n_q, n_embd });
        plan.add_vector(blk(il, "attn_q_norm.weight"), head_dim, tensor_init::ONES);
        plan.add_vector(blk(il, "attn_k_norm.weight"), head_dim, tensor_init::ONES);
        plan.add_matrix(blk(il, "attn_gate.weight"), { n_embd, n_q });
        plan.add_vector(blk(il, "ffn_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_vector(blk(il, "post_ffw_norm.weight"), n_embd, tensor_init::ONES);
        plan.add_matrix(blk(il, "ffn_gate.weight"), { n_embd, d.n_ff });
        plan.add_matrix(blk(il, "ffn_down.weight"), { d.n_ff, n_embd });
        plan.add_matrix(blk(il, "ffn_up.weight"), { n_embd, d.n_ff });
    }
    return true;
}

}  // namespace muse::mkmodel
