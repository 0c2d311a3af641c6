#include "test-models.h"

#include "engine/logging.h"

#include "mkmodel.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>

namespace muse::test {

static std::string dir() {
    const std::string d = MUSE_TEST_MODEL_DIR;
    std::filesystem::create_directories(d);
    return d;
}

static std::string ensure(const std::string & name, mkmodel::model_family fam) {
    static std::mutex mu;
    std::lock_guard<std::mutex> lk(mu);
    const std::string path = dir() + "/" + name;
    if (!std::filesystem::exists(path)) {
        mkmodel::options opt;
        opt.family   = fam;
        opt.preset   = mkmodel::model_preset::TINY;
        opt.out_path = path;
        std::string err;
        if (!mkmodel::write_model(opt, err)) {
            ADD_FAILURE() << "cannot generate " << path << ": " << err;
        }
    }
    return path;
}

std::string model_path(test_family f) {
    return f == QWEN ? ensure("tiny-qwen.gguf", mkmodel::model_family::QWEN2)
                     : ensure("tiny-muse-glimmer.gguf", mkmodel::model_family::MUSE_GLIMMER);
}

std::string mmproj_path() { return ensure("tiny-mmproj.gguf", mkmodel::model_family::MMPROJ); }

std::string scratch_dir() {
    const std::string d = dir() + "/scratch";
    std::filesystem::create_directories(d);
    return d;
}

const model & shared_model(test_family f) {
    static std::mutex                                     mu;
    static std::map<test_family, std::unique_ptr<model>>  models;
    std::lock_guard<std::mutex>                           lk(mu);
    auto & m = models[f];
    if (!m) {
        log_init(0);
        model_params mp;
        mp.path = model_path(f);
        error err;
        m = model::load(mp, err);
        if (!m) {
            throw std::runtime_error("cannot load test model: " + err.message);
        }
    }
    return *m;
}

drained drain(sequence_handle & h) {
    drained        d;
    sequence_event ev;
    while (h.next(ev)) {
        if (ev.type == sequence_event::TOKEN) {
            if (ev.token != LLAMA_TOKEN_NULL) {  // a text-only event (held-back text) carries no token
                d.tokens.push_back(ev.token);
                d.logprobs.push_back(ev.logprob);
            }
            d.text += ev.text;
        } else {
            d.finish = ev.finish;
            d.use    = ev.use;
            d.err    = ev.err;
        }
    }
    return d;
}

}  // namespace muse::test
