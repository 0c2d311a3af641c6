#include "vision.h"

#include "llama.h"
#include "mtmd.h"

#include <chrono>
#include <cstring>

namespace muse {

const char * media_marker() {
    return mtmd_default_marker();
}

vision_encoder::vision_encoder(const model & m, size_t cache_bytes) : mdl(m), cap(cache_bytes) {}

vision_stats vision_encoder::stats() const {
    std::lock_guard<std::mutex> lk(mu);
    return st;
}

std::shared_ptr<const image_embedding> vision_encoder::encode(const media & img, error & err) {
    err = {};
    mtmd_context * ctx = mdl.projector();
    if (!ctx || !mtmd_support_vision(ctx)) {
        err = { ERROR_INVALID_ARGUMENT, "the model has no vision projector; load one with --mmproj" };
        return nullptr;
    }
    if (img.rgb.size() != (size_t) img.width * img.height * 3 || img.width <= 0 || img.height <= 0) {
        err = { ERROR_INVALID_ARGUMENT, img.source + ": no decoded pixels to encode" };
        return nullptr;
    }
    std::lock_guard<std::mutex> lk(mu);  // one projector run at a time; lookups are cheap
    if (auto it = cache.find(img.hash); it != cache.end()) {
        lru.splice(lru.begin(), lru, it->second.second);
        st.hits++;
        return it->second.first;
    }

    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<mtmd_bitmap, decltype(&mtmd_bitmap_free)> bmp(
        mtmd_bitmap_init((uint32_t) img.width, (uint32_t) img.height, img.rgb.data()), mtmd_bitmap_free);
    std::unique_ptr<mtmd_input_chunks, decltype(&mtmd_input_chunks_free)> chunks(mtmd_input_chunks_init(),
                                                                                  mtmd_input_chunks_free);
    if (!bmp || !chunks) {
        err = { ERROR_INTERNAL, img.source + ": out of memory preparing the image" };
        return nullptr;
    }
    mtmd_bitmap_set_id(bmp.get(), img.hash.c_str());
    const std::string     marker = mtmd_get_marker(ctx) ? mtmd_get_marker(ctx) : mtmd_default_marker();
    mtmd_input_text       text{ marker.c_str(), marker.size(), false, true };
    const mtmd_bitmap *   bitmaps[] = { bmp.get() };
    if (int32_t rc = mtmd_tokenize(ctx, chunks.get(), &text, bitmaps, 1); rc != 0) {
        err = { ERROR_BAD_INPUT, img.source + ": the projector could not preprocess the image (mtmd_tokenize returned " +
                                     std::to_string(rc) + ")" };
        return nullptr;
    }
    const mtmd_input_chunk * chunk = nullptr;
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i) {
        const mtmd_input_chunk * c = mtmd_input_chunks_get(chunks.get(), i);
        if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_IMAGE) {
            chunk = c;
            break;
        }
    }
    if (!chunk) {
        err = { ERROR_INTERNAL, img.source + ": the projector produced no image chunk" };
        return nullptr;
    }
    if (mtmd_encode_chunk(ctx, chunk) != 0) {
        err = { ERROR_INTERNAL, img.source + ": the vision projector failed to encode the image" };
        return nullptr;
    }
    auto e        = std::make_shared<image_embedding>();
    e->id         = img.hash;
    e->n_tokens   = (int32_t) mtmd_input_chunk_get_n_tokens(chunk);
    e->n_embd     = llama_model_n_embd_inp(mdl.get());
    e->non_causal = mtmd_decode_use_non_causal(ctx, chunk);
    const float * out = mtmd_get_output_embd(ctx);
    e->data.assign(out, out + (size_t) e->n_tokens * e->n_embd);

    st.encodes++;
    st.encode_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const size_t bytes = e->data.size() * sizeof(float);
    lru.push_front(img.hash);
    cache[img.hash] = { e, lru.begin() };
    st.cached_bytes += bytes;
    while (st.cached_bytes > cap && lru.size() > 1) {  // the newest entry always stays
        auto old = cache.find(lru.back());
        st.cached_bytes -= old->second.first->data.size() * sizeof(float);
        cache.erase(old);
        lru.pop_back();
    }
    return e;
}

// The rendered prompt with its images: text chunks as tokens, each image as an embedding block
// (encoded once per content and cached) at its placeholder positions.
error vision_encoder::tokenize(const std::string & prompt, const std::vector<const media *> & imgs, sequence_request & out) {
    mtmd_context * ctx = mdl.projector();
    if (!ctx || !mtmd_support_vision(ctx)) {
        return { ERROR_INVALID_ARGUMENT, "the model has no vision projector; load one with --mmproj" };
    }
    if (mtmd_decode_use_mrope(ctx)) {
        return { ERROR_INVALID_ARGUMENT, "this projector places images with M-RoPE positions (Qwen2-VL style), which Muse "
                                         "does not support yet; use --image without --mmproj for OCR text" };
    }
    using bitmap_ptr   = std::unique_ptr<mtmd_bitmap, decltype(&mtmd_bitmap_free)>;
    std::vector<bitmap_ptr>          owned;
    std::vector<const mtmd_bitmap *> bitmaps;
    for (const media * img : imgs) {
        owned.emplace_back(mtmd_bitmap_init((uint32_t) img->width, (uint32_t) img->height, img->rgb.data()), mtmd_bitmap_free);
        if (!owned.back()) {
            return { ERROR_INTERNAL, img->source + ": out of memory preparing the image" };
        }
        mtmd_bitmap_set_id(owned.back().get(), img->hash.c_str());
        bitmaps.push_back(owned.back().get());
    }
    std::unique_ptr<mtmd_input_chunks, decltype(&mtmd_input_chunks_free)> chunks(mtmd_input_chunks_init(), mtmd_input_chunks_free);
    mtmd_input_text text{ prompt.c_str(), prompt.size(), true, true };
    if (int32_t rc = mtmd_tokenize(ctx, chunks.get(), &text, bitmaps.data(), bitmaps.size()); rc != 0) {
        return { rc == 1 ? ERROR_INVALID_ARGUMENT : ERROR_BAD_INPUT,
                 rc == 1 ? "the prompt's media markers do not match its images" : "the projector could not preprocess an image" };
    }
    size_t next_image = 0;
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i) {
        const mtmd_input_chunk * c = mtmd_input_chunks_get(chunks.get(), i);
        if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t              n = 0;
            const llama_token * t = mtmd_input_chunk_get_tokens_text(c, &n);
            out.prompt_tokens.insert(out.prompt_tokens.end(), t, t + n);
            continue;
        }
        if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_IMAGE || next_image >= imgs.size()) {
            return { ERROR_INVALID_ARGUMENT, "this projector's media type is not supported (images only)" };
        }
        error err;
        auto  emb = encode(*imgs[next_image++], err);
        if (!emb) {
            return err;
        }
        if ((size_t) emb->n_tokens != mtmd_input_chunk_get_n_tokens(c)) {
            return { ERROR_INTERNAL, "the image's encoding has " + std::to_string(emb->n_tokens) + " positions, its chunk " +
                                         std::to_string(mtmd_input_chunk_get_n_tokens(c)) };
        }
        prompt_embedding pe;
        pe.at    = (int32_t) out.prompt_tokens.size();
        pe.block = emb;
        out.embeddings.push_back(pe);
        out.prompt_tokens.resize(out.prompt_tokens.size() + emb->n_tokens, 0);
    }
    out.prompt.clear();
    return {};
}

}  // namespace muse
