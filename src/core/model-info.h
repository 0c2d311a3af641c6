#pragma once
// What a loaded model is: the facts `muse info` prints, /v1/models describes and the front ends
// show. Plain data, filled by the engine when it loads a model (engine/model.h) and read as it
// is by the app layer and the front ends, which never include the engine.
//
//   const muse::model_info & i = runtime->describe();
//   printf("%s, %s parameters\n", i.description.c_str(), std::to_string(i.n_params).c_str());
//
// Thread safety: a value; copy it freely.

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

struct model_info {
    std::string path;
    std::string architecture;       // general.architecture, e.g. "qwen2", "muse-glimmer"
    std::string name;               // general.name when present
    std::string description;        // llama_model_desc, e.g. "qwen2 1B Q8_0"
    uint64_t    n_params     = 0;
    uint64_t    size_bytes   = 0;
    int32_t     n_ctx_train  = 0;
    int32_t     n_embd       = 0;
    int32_t     n_layer      = 0;
    int32_t     n_head       = 0;
    int32_t     n_vocab      = 0;
    std::string template_family;    // "muse-glimmer", "qwen", "chatml", ... or "none"
    bool        supports_reasoning = false;
    bool        supports_tools     = false;  // the chat template renders tools and tool calls
    bool        has_projector      = false;
    std::string projector_path;
    bool        projector_vision   = false;
    bool        projector_audio    = false;
    std::vector<std::string> rpc_servers;  // the ggml rpc-servers holding its layers, if any
    bool        offloaded = false;  // a local GPU holds layers (rpc-servers do not count)
};

}  // namespace muse
