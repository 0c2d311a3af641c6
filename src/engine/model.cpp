#include "model.h"

#include "core/file.h"

#include "gguf-check.h"
#include "logging.h"
#include "model-probe.h"
#include "render-memo.h"
#include "rpc.h"

#include "chat.h"
#include "gguf.h"
#include "ggml-cpp.h"
#include "llama-cpp.h"
#include "mtmd.h"

#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <thread>

namespace muse {

struct model::impl {
    llama_model_ptr           llm;
    mtmd::context_ptr         mtmd;
    common_chat_templates_ptr templates;
    model_info                info;
    mutable render_memo       renders;
};

model::model() : pimpl(std::make_unique<impl>()) {}
model::~model() = default;

llama_model *           model::get() const { return pimpl->llm.get(); }
mtmd_context *          model::projector() const { return pimpl->mtmd.get(); }
common_chat_templates * model::templates() const { return pimpl->templates.get(); }
const model_info &      model::info() const { return pimpl->info; }
render_memo &           model::renders() const { return pimpl->renders; }

error check_gguf_file(const std::string & path, std::string & arch) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (path.empty()) {
        return { ERROR_FILE_NOT_FOUND, "no model file given" };
    }
    if (!fs::exists(path, ec)) {
        return { ERROR_FILE_NOT_FOUND, "model file not found: " + path };
    }
    if (fs::is_directory(path, ec)) {
        return { ERROR_FILE_NOT_FOUND, path + " is a directory, not a GGUF file" };
    }
    const uint64_t file_size = fs::file_size(path, ec);
    if (ec) {
        return { ERROR_FILE_NOT_FOUND, "cannot read " + path + ": " + ec.message() };
    }

    char magic[4] = {};
    {
        // Only a regular file: a FIFO or device would block or never end inside the loader.
        std::string why;
        const int   fd = open_regular_file(path, why);
        if (fd < 0) {
            return { ERROR_FILE_NOT_FOUND, why };
        }
        const ssize_t n = ::read(fd, magic, sizeof(magic));
        ::close(fd);
        if (n != (ssize_t) sizeof(magic) || std::memcmp(magic, "GGUF", 4) != 0) {
            return { ERROR_NOT_GGUF, path + " is not a GGUF model file (bad magic)" };
        }
    }

    gguf_init_params gp = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
    gguf_context *   gctx = gguf_init_from_file(path.c_str(), gp);
    const std::string detail = log_take_last_error();
    if (!gctx) {
        return { ERROR_CORRUPT_MODEL, path + " is damaged or truncated: its GGUF header cannot be read" +
                                          (detail.empty() ? std::string() : " (" + detail + ")") };
    }
    gguf_context_ptr guard(gctx);

    // gguf only reads the header; a file cut short in its tensor data still parses. Check
    // that every tensor lies inside the file so the loader never reads past its end.
    uint64_t need = gguf_get_data_offset(gctx);
    for (int64_t i = 0; i < gguf_get_n_tensors(gctx); ++i) {
        const uint64_t end = gguf_get_data_offset(gctx) + gguf_get_tensor_offset(gctx, i) + gguf_get_tensor_size(gctx, i);
        need = std::max(need, end);
    }
    if (need > file_size) {
        return { ERROR_CORRUPT_MODEL, path + " is truncated: its tensors need " + std::to_string(need) +
                                          " bytes but the file has " + std::to_string(file_size) };
    }

    const int64_t key = gguf_find_key(gctx, "general.architecture");
    if (key < 0 || gguf_get_kv_type(gctx, key) != GGUF_TYPE_STRING) {
        arch.clear();
    } else {
        arch = gguf_get_val_str(gctx, key);
    }
    return check_gguf_metadata(gctx, path);
}

static std::string template_family(const std::string & src) {
    if (src.empty()) {
        return "none";
    }
    if (src.find("UNSAFE CONTENT CATEGORIES") != std::string::npos) {
        return "llama-guard";  // Llama Guard's template writes the task prompt around the turn
    }
    if (src.find("<|start|>") != std::string::npos && src.find("to=self") != std::string::npos) {
        return "muse-glimmer";
    }
    if (src.find("<|im_start|>") != std::string::npos) {
        return src.find("<think>") != std::string::npos ? "qwen3" : "chatml";
    }
    if (src.find("<|start_header_id|>") != std::string::npos) {
        return "llama3";
    }
    if (src.find("<start_of_turn>") != std::string::npos) {
        return "gemma";
    }
    if (src.find("<|channel|>") != std::string::npos) {
        return "gpt-oss";
    }
    return "other";
}

static std::string meta_str(const llama_model * m, const char * key) {
    char buf[512];
    const int32_t n = llama_model_meta_val_str(m, key, buf, sizeof(buf));
    return n < 0 ? std::string() : std::string(buf);
}

std::unique_ptr<model> model::load(const model_params & params, error & err) {
    std::string arch;
    err = check_gguf_file(params.path, arch);
    if (err) {
        return nullptr;
    }
    if (arch.empty()) {
        err = { ERROR_CORRUPT_MODEL, params.path + " has no general.architecture key; it is not a llama.cpp model" };
        return nullptr;
    }
    if (!params.mmproj_path.empty()) {
        std::string proj_arch;
        error perr = check_gguf_file(params.mmproj_path, proj_arch);
        if (perr) {
            err = { perr.code == ERROR_NONE ? ERROR_PROJECTOR_LOAD : perr.code, "projector: " + perr.message };
            return nullptr;
        }
    }

    llama_backend_init();

    // llama.cpp asserts (stopping the process) where the checks above cannot see, and the
    // chat template is untrusted code: try both in a child process with limits first.
    err = probe_model(params.path, arch, params.probe);
    if (err) {
        return nullptr;
    }

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = params.n_gpu_layers;
    std::vector<ggml_backend_dev_t> rpc_devices;
    if (!params.rpc_servers.empty()) {
        if ((err = attach_rpc_servers(params.rpc_servers, rpc_devices))) return nullptr;
        rpc_devices.push_back(nullptr);
        mp.devices = rpc_devices.data();  // the servers' devices only: no local GPU joins in
    }
    struct progress_ctx {
        const std::function<bool(float)> * fn;
    } pctx{ &params.progress };
    if (params.progress) {
        mp.progress_callback = [](float p, void * ud) -> bool {
            return (*static_cast<progress_ctx *>(ud)->fn)(p);
        };
        mp.progress_callback_user_data = &pctx;
    }

    log_take_last_error();
    llama_model_ptr llm(llama_model_load_from_file(params.path.c_str(), mp));
    if (!llm) {
        err = model_load_error(params.path, arch, log_take_last_error());
        return nullptr;
    }

    std::unique_ptr<model> m(new model());
    impl & d = *m->pimpl;

    try {
        d.templates = common_chat_templates_init(llm.get(), "");
    } catch (const std::exception & e) {
        err = { ERROR_MODEL_LOAD, params.path + ": its chat template cannot be parsed: " + e.what() };
        return nullptr;
    }

    if (!params.mmproj_path.empty()) {
        mtmd_context_params cp = mtmd_context_params_default();
        cp.use_gpu       = params.n_gpu_layers != 0;
        cp.print_timings = false;
        cp.warmup        = false;
        cp.n_threads     = params.n_threads > 0 ? params.n_threads : (int) std::max(1u, std::thread::hardware_concurrency());
        log_take_last_error();
        d.mtmd.reset(mtmd_init_from_file(params.mmproj_path.c_str(), llm.get(), cp));
        if (!d.mtmd) {
            const std::string detail = log_take_last_error();
            err = { ERROR_PROJECTOR_LOAD, "failed to load vision projector " + params.mmproj_path +
                                              (detail.empty() ? std::string() : ": " + detail) };
            return nullptr;
        }
    }

    model_info & info = d.info;
    info.path         = params.path;
    info.rpc_servers  = params.rpc_servers;
    // Whether a local GPU holds layers. (llama_supports_gpu_offload() only says what was
    // compiled in: with the RPC backend built it is true on a CPU-only machine.) Layers on
    // rpc-servers do not count: ggml's RPC client reports every remote device as a GPU, the
    // rpc-servers Muse is tested with run on CPUs, and the same model must compute the same
    // tokens there as here.
    info.offloaded = params.n_gpu_layers != 0 && params.rpc_servers.empty() &&
                     (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) != nullptr ||
                      ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_IGPU) != nullptr);
    info.architecture = arch;
    info.name         = meta_str(llm.get(), "general.name");
    char desc[256]    = {};
    llama_model_desc(llm.get(), desc, sizeof(desc));
    info.description        = desc;
    info.n_params           = llama_model_n_params(llm.get());
    info.size_bytes         = llama_model_size(llm.get());
    info.n_ctx_train        = llama_model_n_ctx_train(llm.get());
    info.n_embd             = llama_model_n_embd(llm.get());
    info.n_layer            = llama_model_n_layer(llm.get());
    info.n_head             = llama_model_n_head(llm.get());
    info.n_vocab            = llama_vocab_n_tokens(llama_model_get_vocab(llm.get()));
    const std::string tsrc  = common_chat_templates_was_explicit(d.templates.get())
                                  ? common_chat_templates_source(d.templates.get())
                                  : std::string();
    info.template_family    = template_family(tsrc);
    try {
        info.supports_reasoning = !tsrc.empty() && common_chat_templates_support_enable_thinking(d.templates.get());
    } catch (const std::exception &) {
        info.supports_reasoning = false;
    }
    // A template that never mentions tools cannot show them to the model; llama.cpp would fall
    // back to a generic JSON protocol that such a model was never trained on.
    try {
        const auto caps     = common_chat_templates_get_caps(d.templates.get());
        const auto it       = caps.find("supports_tool_calls");
        info.supports_tools = !tsrc.empty() && it != caps.end() && it->second;
    } catch (const std::exception &) {
        info.supports_tools = false;
    }
    info.has_projector = d.mtmd != nullptr;
    if (d.mtmd) {
        info.projector_path   = params.mmproj_path;
        info.projector_vision = mtmd_support_vision(d.mtmd.get());
        info.projector_audio  = mtmd_support_audio(d.mtmd.get());
    }

    d.llm = std::move(llm);
    return m;
}

}  // namespace muse
