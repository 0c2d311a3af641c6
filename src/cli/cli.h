#pragma once
// Shared pieces of the `muse` command line: exit codes, argument parsing, the default model.

#include "args.h"

#include "app/runtime.h"
#include "core/error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse::cli {

// Documented exit codes (muse --help lists them).
enum exit_code {
    EXIT_OK        = 0,
    EXIT_FAILURE_  = 1,    // generation failed (request error, engine error)
    EXIT_USAGE     = 2,    // bad command line
    EXIT_MODEL     = 3,    // the model or projector cannot be loaded
    EXIT_CANCELLED = 130,  // interrupted with Ctrl-C
};

int exit_code_for(error_code code);

// The engine's size for requests with these options: room in the shared KV cache for the
// prompt and each reasoning agent's budget and answer (at least 4096 cells; `ctx` > 0 sets it),
// and sequences for every agent of a contemplating request; `draft` >= 0 sets
// engine_params::draft_max (--draft).
runtime_engine_options engine_options_for(const ask_options & opt, int32_t ctx, int32_t threads, int32_t draft = -1);

// Resolves the model to load. `path` empty: $MUSE_MODEL, else Muse-Tiny when it is there, else
// the smoke model. Two names stand for models rather than files: "tiny" (Muse-Tiny, trained
// here on arithmetic, models/muse-tiny.gguf) and "smoke" (random weights, meaningless output,
// generated on first use in the cache directory; sets `generated`). Anything else is a file.
bool default_model(std::string & path, bool & generated, std::string & err, bool quiet);

// Where Muse-Tiny is: $MUSE_MODELS_DIR/muse-tiny.gguf, else the source tree's models/.
std::string tiny_model_path();

std::string cache_dir();

// Loads a command's model into a runtime (not started yet) with a progress line: `path` empty
// means the default model (then `path` is set, and the smoke model gets `smoke_note` on
// stderr). On failure prints one line prefixed with `cmd` and sets `exit_code`. `smoke`: set
// when the smoke model was used.
std::unique_ptr<runtime> load_model(const char * cmd, std::string & path, const std::string & mmproj, int32_t threads,
                                    bool quiet, const char * smoke_note, int & exit_code,
                                    bool * smoke = nullptr, const std::vector<std::string> * rpc_servers = nullptr);

// --backend URL...: the assistant over those servers (a routing backend over several), for
// muse ask, chat and eval. `model_path`, `mmproj` and `rpc` must be empty (a usage error naming
// the flags otherwise). On failure prints one line prefixed with `cmd` and sets `exit_code`.
std::unique_ptr<runtime> connect_backends(const char * cmd, const std::vector<std::string> & urls, const remote_params & defaults,
                                          const std::string & model_path, const std::string & mmproj,
                                          const std::vector<std::string> & rpc, assistant_params door_params, int & exit_code);

// A one-line progress indicator on stderr when it is a terminal.
void progress_line(const char * what, float fraction);
void progress_done();

bool stderr_is_tty();
bool stdout_is_tty();

}  // namespace muse::cli
