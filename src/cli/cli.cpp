#include "cli.h"

#include "mkmodel.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace muse::cli {

// The KV cache is shared by every agent: room for the prompt and each reasoning agent's budget
// and answer, at least 4096 cells, at most what a user would sensibly allocate.
runtime_engine_options engine_options_for(const ask_options & opt, int32_t ctx, int32_t threads, int32_t draft) {
    const bool    many = opt.mode == MODE_CONTEMPLATING || opt.mode == MODE_AUTO;
    const int64_t per  = (int64_t) opt.budget + std::min(opt.answer_tokens, 4096) + 64;
    const int64_t need = 2048 + (many ? (int64_t) (opt.agents + 2) * per : per);
    runtime_engine_options ep;
    ep.n_ctx     = ctx > 0 ? ctx : (int32_t) std::clamp<int64_t>(need, 4096, 131072);
    ep.n_threads = threads;
    ep.draft_max = draft;
    ep.n_seq_max = std::max(8, 2 * opt.agents + std::max(6, opt.max_plan_tasks) + 2);
    return ep;
}

int exit_code_for(error_code code) {
    switch (code) {
        case ERROR_NONE:
            return EXIT_OK;
        case ERROR_FILE_NOT_FOUND:
        case ERROR_NOT_GGUF:
        case ERROR_CORRUPT_MODEL:
        case ERROR_UNSUPPORTED_ARCH:
        case ERROR_MODEL_LOAD:
        case ERROR_PROJECTOR_LOAD:
            return EXIT_MODEL;
        case ERROR_INVALID_ARGUMENT:
        case ERROR_BAD_INPUT:
        case ERROR_NOT_FOUND:
            return EXIT_USAGE;
        default:
            return EXIT_FAILURE_;
    }
}

std::string cache_dir() {
    if (const char * d = std::getenv("MUSE_CACHE_DIR"); d && *d) {
        return d;
    }
    if (const char * d = std::getenv("XDG_CACHE_HOME"); d && *d) {
        return std::string(d) + "/muse";
    }
    if (const char * h = std::getenv("HOME"); h && *h) {
        return std::string(h) + "/.cache/muse";
    }
    return "/tmp/muse-cache";
}

std::string tiny_model_path() {
    if (const char * d = std::getenv("MUSE_MODELS_DIR"); d && *d) {
        return std::string(d) + "/muse-tiny.gguf";
    }
    return std::string(MUSE_SOURCE_MODELS_DIR) + "/muse-tiny.gguf";
}

bool default_model(std::string & path, bool & generated, std::string & err, bool quiet) {
    namespace fs = std::filesystem;
    generated = false;
    if (path.empty()) {
        const char * m = std::getenv("MUSE_MODEL");
        path           = m && *m ? m : fs::exists(tiny_model_path()) ? "tiny" : "smoke";
    }
    if (path == "tiny") {
        path = tiny_model_path();
        if (!fs::exists(path)) {
            err = "Muse-Tiny is not at " + path + " (a source checkout has it in models/; set MUSE_MODELS_DIR or pass --model FILE.gguf)";
            return false;
        }
        return true;
    }
    if (path != "smoke") {
        return true;
    }
    const std::string dir = cache_dir() + "/models";
    path                  = dir + "/smoke-muse-glimmer.gguf";
    generated             = true;
    if (fs::exists(path)) {
        return true;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        err = "cannot create " + dir + ": " + ec.message() + " (set MUSE_CACHE_DIR or pass --model)";
        return false;
    }
    if (!quiet) {
        fprintf(stderr, "generating the smoke-test model in %s ...\n", path.c_str());
    }
    mkmodel::options opt;
    opt.family   = mkmodel::model_family::MUSE_GLIMMER;
    opt.preset   = mkmodel::model_preset::TINY;
    opt.out_path = path;
    if (!mkmodel::write_model(opt, err)) {
        err = "cannot generate the default smoke model: " + err + " (pass --model FILE.gguf)";
        return false;
    }
    return true;
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }
bool stdout_is_tty() { return isatty(STDOUT_FILENO) == 1; }

void progress_line(const char * what, float fraction) {
    if (!stderr_is_tty()) {
        return;
    }
    const int width = 30;
    const int fill  = (int) (fraction * width + 0.5f);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%%", what, fill, "##############################", width - fill, "", (int) (fraction * 100 + 0.5f));
    fflush(stderr);
}

void progress_done() {
    if (stderr_is_tty()) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

std::unique_ptr<runtime> load_model(const char * cmd, std::string & path, const std::string & mmproj, int32_t threads,
                                    bool quiet, const char * smoke_note, int & exit_code,
                                    bool * smoke, const std::vector<std::string> * rpc_servers) {
    bool        generated = false;
    std::string err_msg;
    const bool chosen = path.empty();
    if (!default_model(path, generated, err_msg, quiet)) {
        fprintf(stderr, "%s: %s\n", cmd, err_msg.c_str());
        exit_code = EXIT_MODEL;
        return nullptr;
    }
    if (generated && smoke_note) {
        fputs(smoke_note, stderr);
    }
    if (chosen && !generated && !quiet && smoke_note && path == tiny_model_path()) {
        fprintf(stderr, "note: using Muse-Tiny, the 1.4 M-parameter model trained here on arithmetic: it adds and\n"
                        "      subtracts whole numbers and knows nothing else. For real answers: --model FILE.gguf\n");
    }
    if (smoke) {
        *smoke = generated;
    }
    runtime_model_options mo;
    mo.path      = path;
    mo.mmproj    = mmproj;
    mo.n_threads = threads;
    if (rpc_servers) mo.rpc_servers = *rpc_servers;
    mo.progress  = [](float p) { progress_line("loading", p); return true; };
    error err;
    auto  rt = runtime::load(mo, err);
    progress_done();
    if (!rt) {
        fprintf(stderr, "%s: %s\n", cmd, err.message.c_str());
        exit_code = exit_code_for(err.code);
    }
    return rt;
}

std::unique_ptr<runtime> connect_backends(const char * cmd, const std::vector<std::string> & urls, const remote_params & defaults,
                                          const std::string & model_path, const std::string & mmproj,
                                          const std::vector<std::string> & rpc, assistant_params door_params, int & exit_code) {
    if (!model_path.empty() || !mmproj.empty() || !rpc.empty()) {
        fprintf(stderr, "%s: --backend answers with a server's model: leave out --model, --mmproj and --rpc\n", cmd);
        exit_code = EXIT_USAGE;
        return nullptr;
    }
    std::vector<backend_spec> specs;
    for (const auto & u : urls) {
        backend_spec s;
        s.remote     = defaults;
        s.remote.url = u;
        if (std::string bad = validate(s.remote); !bad.empty()) {
            fprintf(stderr, "%s: --backend %s: %s\n", cmd, u.c_str(), bad.c_str());
            exit_code = EXIT_USAGE;
            return nullptr;
        }
        specs.push_back(s);
    }
    error err;
    auto  rt = runtime::remote(specs, std::move(door_params), err);
    if (!rt) {
        fprintf(stderr, "%s: --backend %s\n", cmd, err.message.c_str());
        exit_code = err.code == ERROR_INVALID_ARGUMENT ? EXIT_USAGE : exit_code_for(err.code);
    }
    return rt;
}

}  // namespace muse::cli
