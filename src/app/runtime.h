#pragma once
// The composition root of the front ends: from the options a command line gives, it loads the
// model (the model-file checks first, then the weights, with a progress callback), starts the
// engine on it, and builds the local backend and the assistant over them. It owns the four and
// destroys them in reverse order (assistant, backend, engine, model), so a front end holds one
// object and never sees the engine.
//
//   muse::set_log_verbosity(0);                          // before loading: llama.cpp stays quiet
//   muse::runtime_model_options mo;
//   mo.path     = "model.gguf";
//   mo.progress = [](float f) { show(f); return true; };
//   muse::error err;
//   auto rt = muse::runtime::load(mo, err);             // refused: err says why (ERROR_NOT_GGUF, ...)
//   if (!rt) { fprintf(stderr, "%s\n", err.message.c_str()); return; }
//   rt->describe().description;                         // what `muse info` prints
//   muse::runtime_engine_options eo;
//   eo.n_ctx = 8192;
//   if (muse::error e = rt->start(eo)) { ... }         // the engine, the backend, the assistant
//   rt->door().ask(std::move(in), sink, &cancel, out);
//
// Thread safety: load(), start() and the destructor from one controlling thread. After start(),
// door() and get_backend() may be used from any thread, as the assistant and backend allow;
// describe() and n_ctx() read immutable state.

#include "app/assistant.h"
#include "app/backends.h"  // backend_spec, for runtime::remote and peers
#include "backend/routing/routing-backend.h"  // routing_params
#include "core/error.h"
#include "core/model-info.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace muse {

// Routes llama.cpp's own log (quiet by default: Muse reports errors itself): 0 nothing,
// 1 warnings and errors, 2 everything. Call before load().
void set_log_verbosity(int verbosity);

struct runtime_model_options {
    std::string path;             // the GGUF model
    std::string mmproj;           // optional vision projector
    int32_t     n_threads  = 0;   // projector threads; 0 = hardware concurrency
    int32_t     gpu_layers = -1;  // layers on the GPU when one exists; -1: all
    // ggml rpc-servers ("HOST:PORT") that hold the layers (engine/rpc.h: trusted networks only).
    std::vector<std::string> rpc_servers;
    // Load progress in [0, 1]; return false to abort the load.
    std::function<bool(float)> progress;
};

// "HOST:PORT,HOST:PORT" of --rpc into endpoints (each checked; at most 16).
error parse_rpc_list(const std::string & list, std::vector<std::string> & out);

// What a loaded model is: the facts `muse info` prints and the front ends show (the engine's
// own description, core/model-info.h, as it is).
using model_description = model_info;

// How the engine runs the model. Zero means the engine's own default.
struct runtime_engine_options {
    int32_t n_ctx        = 0;  // KV cells shared by every request and agent
    int32_t n_threads    = 0;  // 0: all hardware threads
    int32_t n_batch      = 0;  // tokens per decode call
    int32_t n_seq_max    = 0;  // sequences alive at once
    int32_t prompt_cache = 0;  // finished prompts kept for reuse (0: off)
    int32_t draft_max    = -1; // prompt-lookup drafts per sequence and step (engine_params::draft_max); -1: the engine's default, 0: off
    // Servers that share the load with the local model (muse serve --model with --backend or
    // --backends): requests are routed over the local engine and them (backend/routing/). An
    // entry with local = true sets the local member's weight and limit (default 1, none).
    std::vector<backend_spec> peers;
    routing_params            routing;  // how requests are spread over the local engine and the peers
};

class runtime {
  public:
    // No model here: the assistant over remote OpenAI-compatible servers (backend/remote/),
    // started already; over several, a routing backend spreads the requests (affinity, load,
    // failover: backend/routing/). Null with `err` when a server cannot be used
    // (ERROR_UNAVAILABLE, ERROR_INVALID_ARGUMENT). describe() then names the remote model;
    // n_ctx() is its context.
    static std::unique_ptr<runtime> remote(const std::vector<backend_spec> & servers, assistant_params door_params, error & err,
                                           const routing_params & routing = {});

    // Loads the model: its file is checked (a readable, complete GGUF whose metadata and chat
    // template are safe to load) before its weights are read. Null with `err` on failure; the
    // codes are those of the engine's loader (ERROR_FILE_NOT_FOUND, ERROR_NOT_GGUF, ...).
    static std::unique_ptr<runtime> load(const runtime_model_options & opt, error & err);
    ~runtime();

    runtime(const runtime &)             = delete;
    runtime & operator=(const runtime &) = delete;

    const model_description & describe() const;

    // Starts the engine and builds the local backend and the assistant over it. Once: a second
    // call is refused (a failed one may be tried again).
    error start(const runtime_engine_options & opt, assistant_params door_params = {});

    // After start():
    assistant & door() const;
    backend &   get_backend() const;
    int32_t     n_ctx() const;  // KV cells the engine holds

  private:
    runtime();
    struct impl;
    std::unique_ptr<impl> p;
};

}  // namespace muse
