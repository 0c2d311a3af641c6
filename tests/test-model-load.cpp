// Loading models: real ones load and describe themselves; broken files give clear errors.

#include "test-models.h"

#include "engine/logging.h"
#include "engine/model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

using namespace muse;

namespace {

std::string read_all(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string write_file(const std::string & name, const std::string & data) {
    const std::string path = test::scratch_dir() + "/" + name;
    std::ofstream(path, std::ios::binary).write(data.data(), (std::streamsize) data.size());
    return path;
}

error load_error(const std::string & path) {
    log_init(0);
    model_params mp;
    mp.path = path;
    error err;
    auto  m = model::load(mp, err);
    EXPECT_EQ(m == nullptr, (bool) err) << path;
    return err;
}

TEST(model_load, glimmer_model_describes_itself) {
    const auto & i = test::shared_model(test::GLIMMER).info();
    EXPECT_EQ(i.architecture, "muse-glimmer");
    EXPECT_EQ(i.template_family, "muse-glimmer");
    EXPECT_TRUE(i.supports_reasoning);
    EXPECT_GT(i.n_params, 0u);
    EXPECT_GT(i.n_ctx_train, 0);
    EXPECT_FALSE(i.has_projector);
}

TEST(model_load, qwen_model_describes_itself) {
    const auto & i = test::shared_model(test::QWEN).info();
    EXPECT_EQ(i.architecture, "qwen2");
    EXPECT_EQ(i.template_family, "qwen3");
    EXPECT_TRUE(i.supports_reasoning);
}

TEST(model_load, vision_projector_is_loaded_and_reported) {
    model_params mp;
    mp.path        = test::model_path(test::QWEN);
    mp.mmproj_path = test::mmproj_path();
    float last     = -1;
    mp.progress    = [&](float p) { last = p; return true; };
    error err;
    auto  m = model::load(mp, err);
    ASSERT_TRUE(m) << err.message;
    EXPECT_TRUE(m->info().has_projector);
    EXPECT_TRUE(m->info().projector_vision);
    EXPECT_NE(m->projector(), nullptr);
    EXPECT_FLOAT_EQ(last, 1.0f) << "load progress must reach 100%";
}

TEST(model_load, missing_file) {
    auto err = load_error("/nonexistent/model.gguf");
    EXPECT_EQ(err.code, ERROR_FILE_NOT_FOUND);
    EXPECT_NE(err.message.find("/nonexistent/model.gguf"), std::string::npos) << err.message;
}

TEST(model_load, not_a_gguf_file) {
    auto err = load_error(write_file("not-a-model.gguf", "this is a text file, not weights\n"));
    EXPECT_EQ(err.code, ERROR_NOT_GGUF);
    EXPECT_NE(err.message.find("not a GGUF"), std::string::npos) << err.message;
}

TEST(model_load, empty_file) {
    EXPECT_EQ(load_error(write_file("empty.gguf", "")).code, ERROR_NOT_GGUF);
}

TEST(model_load, truncated_files) {
    const std::string data = read_all(test::model_path(test::GLIMMER));
    ASSERT_GT(data.size(), 1000u);
    // Cut inside the header, inside the tensor table and inside the tensor data.
    for (size_t keep : { (size_t) 16, (size_t) 200, data.size() / 2, data.size() - 1 }) {
        auto err = load_error(write_file("truncated.gguf", data.substr(0, keep)));
        EXPECT_EQ(err.code, ERROR_CORRUPT_MODEL) << "cut at " << keep << ": " << err.message;
        EXPECT_NE(err.message.find("truncated"), std::string::npos) << err.message;
    }
}

TEST(model_load, bit_flipped_header_gives_error_or_loads_never_crashes) {
    const std::string data = read_all(test::model_path(test::QWEN));
    // Flip bits in the header's counts and lengths (where a flip turns sizes absurd), then
    // at random places of the metadata and tensor table.
    std::vector<size_t> where = { 4, 8, 9, 15, 16, 23, 24, 31 };
    std::mt19937        rng(1234);
    for (int i = 0; i < 24; ++i) {
        where.push_back(32 + rng() % 4000);
    }
    int n_errors = 0;
    for (size_t pos : where) {
        std::string bad = data;
        bad[pos] ^= (char) (1 << (rng() % 8));
        const std::string path = write_file("flipped.gguf", bad);
        log_init(0);
        model_params mp;
        mp.path = path;
        error err;
        auto  m = model::load(mp, err);  // must return, never crash
        if (!m) {
            n_errors++;
            EXPECT_NE(err.code, ERROR_NONE);
            EXPECT_FALSE(err.message.empty());
            EXPECT_EQ(err.message.find('\n'), std::string::npos) << "errors are one line: " << err.message;
        }
    }
    EXPECT_GE(n_errors, 4) << "flips of the version, tensor count and KV count must be caught";
}

TEST(model_load, unknown_architecture_is_named) {
    std::string data = read_all(test::model_path(test::QWEN));
    // Rename the architecture in place (same length keeps the file valid): "qwen2" -> "qwenx".
    const std::string key = "general.architecture";
    size_t at = data.find(key);
    ASSERT_NE(at, std::string::npos);
    size_t val = data.find("qwen2", at);
    ASSERT_NE(val, std::string::npos);
    data[val + 4] = 'x';
    auto err = load_error(write_file("unknown-arch.gguf", data));
    EXPECT_EQ(err.code, ERROR_UNSUPPORTED_ARCH) << err.message;
    EXPECT_NE(err.message.find("qwenx"), std::string::npos) << err.message;
}

}  // namespace
