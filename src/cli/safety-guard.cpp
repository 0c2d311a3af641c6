// --guard-model: the guard model's own runtime (declared in safety-flags.h; built into the
// muse binary, which owns model loading).

#include "cli.h"
#include "safety-flags.h"

#include <cstdio>

namespace muse::cli {

std::unique_ptr<runtime> load_guard(const char * cmd, const safety_flags & f, safety_door * door, int32_t threads, int & exit_code) {
    exit_code = EXIT_OK;
    if (f.guard_model.empty() || f.guard_model == "self" || !door) return nullptr;
    std::string path = f.guard_model;
    auto        rt   = load_model(cmd, path, "", threads, true, "", exit_code);
    if (!rt) return nullptr;
    runtime_engine_options eo;
    eo.n_ctx     = 4096;  // one verdict at a time per request: the guard prompt and 12 tokens
    eo.n_threads = threads;
    eo.n_seq_max = 8;
    if (error e = rt->start(eo)) {
        fprintf(stderr, "%s: --guard-model %s: %s\n", cmd, f.guard_model.c_str(), e.message.c_str());
        exit_code = exit_code_for(e.code);
        return nullptr;
    }
    door->set_guard(&rt->get_backend());
    return rt;
}

}  // namespace muse::cli
