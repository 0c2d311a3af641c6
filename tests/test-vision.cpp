// Image encodings through the generated tiny vision projector: encoded once per image content
// and served from the cache after that.

#include "engine/logging.h"
#include "perception/vision.h"
#include "test-models.h"

#include "llama.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace muse;

namespace {

// A decoded image made in memory; `seed` changes its pixels and so its content hash.
image make_image(int w, int h, int seed) {
    image img;
    img.source = "gen-" + std::to_string(seed) + ".png";
    img.format = "png";
    img.width  = w;
    img.height = h;
    img.rgb.resize((size_t) w * h * 3);
    for (size_t i = 0; i < img.rgb.size(); ++i) {
        img.rgb[i] = (uint8_t) ((i * 7 + (size_t) seed * 31) & 0xFF);
    }
    img.hash = "test-" + std::to_string(seed);  // stands in for the SHA-256 of the file
    return img;
}

std::unique_ptr<model> load_with_projector() {
    log_init(0);
    model_params mp;
    mp.path        = test::model_path(test::QWEN);
    mp.mmproj_path = test::mmproj_path();
    mp.n_threads   = 2;
    error err;
    auto  m = model::load(mp, err);
    EXPECT_TRUE(m) << err.message;
    return m;
}

TEST(vision, an_image_is_encoded_once_and_then_served_from_the_cache) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    vision_encoder enc(*m);
    error          err;
    const image    a  = make_image(64, 48, 1);
    auto           e1 = enc.encode(a, err);
    ASSERT_TRUE(e1) << err.message;
    EXPECT_GT(e1->n_tokens, 0);
    EXPECT_EQ(e1->n_embd, llama_model_n_embd_inp(m->get()));
    ASSERT_EQ(e1->data.size(), (size_t) e1->n_tokens * e1->n_embd);
    for (float v : e1->data) {
        ASSERT_TRUE(std::isfinite(v));
    }
    auto e2 = enc.encode(a, err);
    ASSERT_TRUE(e2);
    EXPECT_EQ(e1.get(), e2.get()) << "the same content is not encoded again";
    auto e3 = enc.encode(make_image(64, 48, 2), err);
    ASSERT_TRUE(e3);
    EXPECT_NE(e3->data, e1->data) << "different pixels, different embeddings";
    const vision_stats s = enc.stats();
    EXPECT_EQ(s.encodes, 2u);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_GT(s.encode_ms, 0.0);
}

TEST(vision, the_cache_keeps_to_its_size_and_drops_the_oldest) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error          err;
    vision_encoder probe(*m);
    auto           one = probe.encode(make_image(32, 32, 10), err);
    ASSERT_TRUE(one) << err.message;
    const size_t   bytes = one->data.size() * sizeof(float);
    vision_encoder enc(*m, bytes * 2);  // room for two encodings
    for (int seed : { 11, 12, 13 }) {
        ASSERT_TRUE(enc.encode(make_image(32, 32, seed), err)) << err.message;
    }
    EXPECT_LE(enc.stats().cached_bytes, bytes * 2);
    ASSERT_TRUE(enc.encode(make_image(32, 32, 13), err));
    EXPECT_EQ(enc.stats().hits, 1u) << "the newest is kept";
    ASSERT_TRUE(enc.encode(make_image(32, 32, 11), err));
    EXPECT_EQ(enc.stats().encodes, 4u) << "the oldest was dropped and is encoded again";
}

TEST(vision, a_model_without_a_projector_says_what_to_do) {
    vision_encoder enc(test::shared_model(test::QWEN));
    error          err;
    EXPECT_FALSE(enc.encode(make_image(8, 8, 3), err));
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(err.message.find("--mmproj"), std::string::npos) << err.message;
}

}  // namespace
