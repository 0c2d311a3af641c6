#pragma once
// A loaded GGUF model: weights (llama_model), its chat templates and an optional vision
// projector (libmtmd). Shared, read-only state; per-conversation state lives in the engine.
//
//   muse::error err;
//   auto m = muse::model::load({ .path = "model.gguf" }, err);
//   if (!m) { fprintf(stderr, "%s\n", err.message.c_str()); }
//
// Thread safety: load() may run on any thread; a loaded model is immutable and may be read
// from any thread. The engine thread is the only one that decodes with it.

#include "core/error.h"
#include "core/model-info.h"
#include "model-probe.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct llama_model;
struct mtmd_context;
struct common_chat_templates;

namespace muse {

class render_memo;

struct model_params {
    std::string path;
    std::string mmproj_path;  // optional vision projector
    int32_t     n_gpu_layers = -1;  // -1: all layers on the GPU when one exists
    // ggml rpc-servers ("HOST:PORT") that hold the layers instead of this machine's devices
    // (engine/rpc.h); n_gpu_layers then counts the layers sent to them (-1: all).
    std::vector<std::string> rpc_servers;
    int32_t     n_threads    = 0;   // projector threads; 0 = hardware concurrency
    // Load progress in [0, 1]; return false to abort.
    std::function<bool(float)> progress;
    // Limits for trying the model (and its chat template) in a child process first.
    probe_limits probe;
};

class model {
  public:
    static std::unique_ptr<model> load(const model_params & params, error & err);
    ~model();

    model(const model &)             = delete;
    model & operator=(const model &) = delete;

    llama_model *           get() const;
    mtmd_context *          projector() const;  // null when none was loaded
    common_chat_templates * templates() const;
    render_memo &           renders() const;  // recent renders of the chat template (render-memo.h)
    const model_info &      info() const;

  private:
    model();
    struct impl;
    std::unique_ptr<impl> pimpl;
};

// Checks that `path` is a readable, complete GGUF file whose metadata llama.cpp can load
// safely (gguf-check.h), without loading its weights. Fills arch with general.architecture.
error check_gguf_file(const std::string & path, std::string & arch);

}  // namespace muse
