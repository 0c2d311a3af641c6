// A LLaVA-1.5-style vision projector: CLIP ViT encoder + 2-layer MLP ("mlp" projector type),
// the simplest one libmtmd loads (tools/mtmd/clip.cpp, PROJECTOR_TYPE_MLP; graph in
// tools/mtmd/models/llava.cpp). Its output size is the text model's n_embd, which is all
// that pairs a projector with a text model.
#include "model-plan.h"

#include <string>

namespace muse::mkmodel {

namespace {

struct vision_dims {
    int n_embd     = 0;
    int n_head     = 0;
    int n_ff       = 0;
    int n_layer    = 0;
    int image_size = 0;
    int patch_size = 0;
};

vision_dims vision_dims_for(model_preset preset) {
    if (preset == model_preset::TINY) {
        // 56 / 14 = 4x4 patches: 16 image tokens per image.
        return { 128, 2, 256, 2, 56, 14 };
    }
    // ViT-B/16 at 224 px: 196 image tokens, a realistic encoder cost for benchmarks.
    return { 768, 12, 3072, 12, 224, 16 };
}

std::string vblk(int il, const char * name) {
    return "v.blk." + std::to_string(il) + "." + name;
}

}  // namespace

bool plan_mmproj(const options & opt, model_plan & plan, std::string & error) {
    const vision_dims v       = vision_dims_for(opt.preset);
    const int         n_text  = opt.n_embd_text != 0 ? opt.n_embd_text : text_n_embd(opt.preset);
    const int64_t     n_patch = static_cast<int64_t>(v.image_size / v.patch_size) * (v.image_size / v.patch_size);
    if (n_text < 1 || n_text > 65536) {
        error = "n_embd_text (--n-embd) must be between 1 and 65536, got " + std::to_string(n_text);
        return false;
    }

    gguf_context *    m    = plan.meta.get();
    const std::string name = std::string("muse-mkmodel mmproj ") + preset_name(opt.preset);
    const std::string desc =
        "random weights (seed " + std::to_string(opt.seed) + "), pairs with n_embd " + std::to_string(n_text);
    gguf_set_val_str(m, "general.architecture", "clip");
    gguf_set_val_str(m, "general.name", name.c_str());
    gguf_set_val_str(m, "general.description", desc.c_str());
    gguf_set_val_u32(m, "general.file_type", file_type_of(plan.type));
    gguf_set_val_bool(m, "clip.has_vision_encoder", true);
    gguf_set_val_str(m, "clip.projector_type", "mlp");
    gguf_set_val_u32(m, "clip.vision.image_size", v.image_size);
    gguf_set_val_u32(m, "clip.vision.patch_size", v.patch_size);
    gguf_set_val_u32(m, "clip.vision.embedding_length", v.n_embd);
    gguf_set_val_u32(m, "clip.vision.feed_forward_length", v.n_ff);
    gguf_set_val_u32(m, "clip.vision.block_count", v.n_layer);
    gguf_set_val_u32(m, "clip.vision.projection_dim", n_text);
    gguf_set_val_u32(m, "clip.vision.attention.head_count", v.n_head);
    gguf_set_val_f32(m, "clip.vision.attention.layer_norm_epsilon", 1e-5f);
    // OpenAI CLIP's normalisation constants, as LLaVA-1.5's projector file carries them.
    const float mean[3]  = { 0.48145466f, 0.4578275f, 0.40821073f };
    const float stdev[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
    gguf_set_arr_data(m, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
    gguf_set_arr_data(m, "clip.vision.image_std", GGUF_TYPE_FLOAT32, stdev, 3);

    const int64_t n_embd = v.n_embd;
    // Convolution kernels go through im2col, which takes F32/F16 only.
    plan.add_dense("v.patch_embd.weight", { v.patch_size, v.patch_size, 3, n_embd });
    plan.add_dense("v.position_embd.weight", { n_embd, n_patch });
    plan.add_vector("v.pre_ln.weight", n_embd, tensor_init::ONES);
    plan.add_vector("v.pre_ln.bias", n_embd, tensor_init::ZEROS);
    for (int il = 0; il < v.n_layer; ++il) {
        plan.add_vector(vblk(il, "ln1.weight"), n_embd, tensor_init::ONES);
        plan.add_vector(vblk(il, "ln1.bias"), n_embd, tensor_init::ZEROS);
        for (const char * proj : { "attn_q", "attn_k", "attn_v", "attn_out" }) {
            plan.add_matrix(vblk(il, (std::string(proj) + ".weight").c_str()), { n_embd, n_embd });
            plan.add_vector(vblk(il, (std::string(proj) + ".bias").c_str()), n_embd, tensor_init::RANDOM);
        }
        plan.add_vector(vblk(il, "ln2.weight"), n_embd, tensor_init::ONES);
        plan.add_vector(vblk(il, "ln2.bias"), n_embd, tensor_init::ZEROS);
        // clip.cpp swaps up/down of old LLaVA files when ffn_down's rows are n_embd long; with
        // n_ff != n_embd the correct orientation below is never mistaken for the old one.
        plan.add_matrix(vblk(il, "ffn_up.weight"), { n_embd, v.n_ff });
        plan.add_vector(vblk(il, "ffn_up.bias"), v.n_ff, tensor_init::RANDOM);
        plan.add_matrix(vblk(il, "ffn_down.weight"), { v.n_ff, n_embd });
        plan.add_vector(vblk(il, "ffn_down.bias"), n_embd, tensor_init::RANDOM);
    }
    plan.add_matrix("mm.0.weight", { n_embd, n_text });
    plan.add_vector("mm.0.bias", n_text, tensor_init::RANDOM);
    plan.add_matrix("mm.2.weight", { n_text, n_text });
    plan.add_vector("mm.2.bias", n_text, tensor_init::RANDOM);
    return true;
}

}  // namespace muse::mkmodel
