#pragma once
// Generated random-weight models for tests, created on first use in the build tree.

#include "engine/model.h"

#include <memory>
#include <string>

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

}  // namespace muse::test
