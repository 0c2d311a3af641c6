#pragma once
// `muse ask`'s command line: flags into ask options, files and output choices, with every
// request limit's name, range and default from core/limits.h (the help text too). No model,
// no I/O: cmd_ask runs what this returns, and tests check the ranges without a model.
//
//   ask_flags f;
//   if (std::string e = parse_ask_flags(argc, argv, 2, f); !e.empty()) { /* "muse ask: " + e, exit 2 */ }
//   if (f.help) { fputs(ask_help().c_str(), stdout); }
//
// Thread safety: reentrant.

#include "app/backends.h"
#include "app/assistant.h"
#include "safety-flags.h"

#include <string>
#include <vector>

namespace muse::cli {

struct ask_flags {
    bool                     help = false;  // --help: print ask_help() and nothing else
    std::string              prompt, model_path, mmproj, system_prompt;
    std::vector<std::string> data_files, image_files;
    std::vector<std::string> rpc_servers;  // --rpc HOST:PORT,...
    std::vector<std::string> backend_urls;  // --backend URL: a served model instead of a local one
    remote_params            remote;        // --backend-key, --backend-model
    ask_options              opt;            // mode, limits, sampling, stops, schema
    int32_t                  threads = 0, ctx = 0;
    int32_t                  draft   = -1;  // --draft N; -1: the engine's default
    bool                     as_json = false, hide_reasoning = false, show_agents = false;
    safety_flags             safety;
    int                      verbose = 0;
};

// Parses argv[first..]. "" on success, else one line that names the flag. `muse chat` takes the
// same flags with no PROMPT (prompt_required false).
std::string parse_ask_flags(int argc, char ** argv, int first, ask_flags & out, bool prompt_required = true);

// `muse ask --help`.
std::string ask_help();

}  // namespace muse::cli
