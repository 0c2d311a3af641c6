#pragma once
// Generated random-weight models for tests, created on first use in the build tree.

#include "engine/engine.h"
#include "engine/model.h"

#include <memory>
#include <string>
#include <vector>

namespace muse::test {

enum test_family { QWEN, GLIMMER };

// Path of the tiny model of a family (generated once, reused by every test binary).
std::string model_path(test_family f);
// A tiny vision projector paired with the tiny text models.
std::string mmproj_path();
// A scratch directory for files a test writes.
std::string scratch_dir();

// The loaded model of a family, shared by the tests of one binary.
const model & shared_model(test_family f);

// A sequence read to its end: the tokens generated (with their log-probabilities when the
// request asked for them), the text, and the DONE event's finish, usage and error.
struct drained {
    std::vector<llama_token> tokens;
    std::vector<float>       logprobs;
    std::string              text;
    finish_reason            finish = FINISH_NONE;
    usage                    use;
    error                    err;
};
drained drain(sequence_handle & h);

}  // namespace muse::test
