#include "mkmodel.h"

#include "model-plan.h"

namespace muse::mkmodel {

const char * default_vocab_dir() {
    return MUSE_MKMODEL_VOCAB_DIR;
}

text_dims dims_for(model_preset preset) {
    if (preset == model_preset::TINY) {
        // Head size 64 (what GPU flash-attention kernels support) and 2 query heads per KV
        // head, so grouped-query attention is exercised.
        return { .n_embd = 128, .n_layer = 2, .n_head = 2, .n_head_kv = 1, .n_ff = 384, .n_ctx_train = 4096 };
    }
    // Qwen2-0.5B.
    return { .n_embd = 896, .n_layer = 24, .n_head = 14, .n_head_kv = 2, .n_ff = 4864, .n_ctx_train = 32768 };
}

int text_n_embd(model_preset preset) {
    return dims_for(preset).n_embd;
}

uint32_t file_type_of(weight_type type) {
    // llama_ftype: LLAMA_FTYPE_ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7.
    switch (type) {
        case weight_type::F16:
            return 1;
        case weight_type::Q8_0:
            return 7;
        default:
            return 0;
    }
}

const char * family_name(model_family family) {
    switch (family) {
        case model_family::QWEN2:
            return "qwen2";
        case model_family::MUSE_GLIMMER:
            return "muse-glimmer";
        case model_family::MMPROJ:
            return "mmproj";
    }
    return "?";
}

const char * preset_name(model_preset preset) {
    return preset == model_preset::TINY ? "tiny" : "0.5b";
}

const char * type_name(weight_type type) {
    switch (type) {
        case weight_type::DEFAULT:
            return "default";
        case weight_type::F32:
            return "f32";
        case weight_type::F16:
            return "f16";
        case weight_type::Q8_0:
            return "q8_0";
    }
    return "?";
}

weight_type resolve_type(model_preset preset, weight_type type) {
    if (type != weight_type::DEFAULT) {
        return type;
    }
    // Tiny: F32, because with ggml's CPU kernels only F32 weights give a sequence the same
    // greedy tokens whether it is decoded alone or batched with others (with F16 and Q8_0 the
    // rounding of the batched kernels differs and near-tied logits flip after ~200 tokens);
    // tests of batching and forking rely on that. 0.5B: Q8_0, the usual format of the real
    // model's GGUF (~530 MB).
    return preset == model_preset::TINY ? weight_type::F32 : weight_type::Q8_0;
}

bool write_model(const options & opt_in, std::string & error) {
    options opt = opt_in;
    if (opt.out_path.empty()) {
        error = "no output file given";
        return false;
    }
    if (opt.vocab_dir.empty()) {
        opt.vocab_dir = default_vocab_dir();
    }
    if (opt.n_embd_text != 0 && opt.family != model_family::MMPROJ) {
        error = "n_embd_text (--n-embd) only applies to the mmproj family";
        return false;
    }

    model_plan plan;
    plan.type = resolve_type(opt.preset, opt.type);

    bool ok = false;
    switch (opt.family) {
        case model_family::QWEN2:
            ok = plan_qwen2(opt, plan, error);
            break;
        case model_family::MUSE_GLIMMER:
            ok = plan_muse_glimmer(opt, plan, error);
            break;
        case model_family::MMPROJ:
            ok = plan_mmproj(opt, plan, error);
            break;
    }
    return ok && write_plan(plan, opt, error);
}

}  // namespace muse::mkmodel
