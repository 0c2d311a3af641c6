#pragma once
// Tries an untrusted model in a child process before Muse loads it for real. llama.cpp
// stops the whole process on an assertion, and a model's chat template is a program
// (Jinja) that the model's author wrote: a recursive macro overflows the stack, a loop
// can run forever or build gigabytes of text. So a forked child, under an address-space
// and CPU limit and a wall-clock deadline, does what load() will do:
//
//   1. loads the model's metadata, vocabulary and tensor table and builds its compute
//      graphs (llama.cpp's no_alloc mode: no weights are read or allocated), and
//      tokenizes a sample text: every GGML_ASSERT that metadata can reach fires here;
//   2. parses the chat templates and renders them the way Muse will (capability
//      detection, a plain and a tool-calling conversation, thinking on and off) under a
//      tighter limit.
//
// Whatever happens to the child, the caller gets one line: ok, or why the model cannot run.
// Where no child can be started (fork or pipe fails), the probe is skipped and the model is
// loaded with the metadata checks of gguf-check.h alone.
//
//   muse::error err = muse::probe_model("model.gguf", "qwen2", {});
//   if (err) { fprintf(stderr, "%s\n", err.message.c_str()); }
//
// Thread safety: may run on any thread. It forks; the child touches nothing but llama.cpp
// and the pipe to its parent, and leaves with _exit. Costs about one vocabulary load.

#include "core/error.h"

#include <cstdint>
#include <string>

namespace muse {

struct probe_limits {
    // Phase 1: loading the metadata and vocabulary and building the graphs. A backstop
    // only: real models take well under a second; the checks in gguf-check.h come first.
    double   load_cpu_s  = 60;
    double   load_wall_s = 120;
    uint64_t load_memory = 4ull << 30;  // bytes of address space beyond the parent's
    // Phase 2: the chat templates. Real templates render in milliseconds and a few MB.
    double   render_cpu_s  = 2;
    double   render_wall_s = 10;
    uint64_t render_memory = 256ull << 20;
};

// ERROR_NONE when the child loaded the model and rendered its templates; otherwise
// ERROR_CORRUPT_MODEL (an assertion, a crash, a template that fails or exceeds its
// limits), ERROR_UNSUPPORTED_ARCH or ERROR_MODEL_LOAD, with a one-line message that names
// path. arch (general.architecture) is for the message about an unknown architecture.
error probe_model(const std::string & path, const std::string & arch, const probe_limits & limits);

// Classifies a llama.cpp load failure (its last logged error) the way load() reports it.
error model_load_error(const std::string & path, const std::string & arch, const std::string & detail);

}  // namespace muse
