// muse info MODEL: what a GGUF model is and what Muse can do with it.

#include "cli.h"
#include "commands.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace muse::cli {

static const char * k_info_help =
    "usage: muse info MODEL.gguf [--mmproj FILE] [--json] [--verbose]\n"
    "\n"
    "Loads MODEL and prints its architecture, parameter count, context length, chat-template\n"
    "family, reasoning support and whether a vision projector is attached.\n"
    "\n"
    "Downloaded models are untrusted: before loading, Muse checks the metadata llama.cpp would\n"
    "stop on (layer, head and expert counts, epsilons, vocabulary vs tensor shapes) and tries\n"
    "the model and its chat template in a child process with CPU, memory and time limits. A\n"
    "model that fails (a template that crashes, loops or eats memory included) is refused with\n"
    "one line on stderr and exit status 3.\n"
    "\n"
    "  --mmproj FILE  also load this vision projector and report it\n"
    "  --json         print one JSON object instead of text\n"
    "  --verbose      show llama.cpp's own log\n";

int cmd_info(int argc, char ** argv) {
    args        a(argc, argv, 2);
    std::string path, mmproj;
    bool        as_json = false;
    int         verbose = 0;
    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            fputs(k_info_help, stdout);
            return EXIT_OK;
        }
        if (a.value("--mmproj", mmproj)) continue;
        if (a.flag("--json")) { as_json = true; continue; }
        if (a.flag("--verbose") || a.flag("-v")) { verbose = 2; continue; }
        if (a.peek().rfind("-", 0) == 0) {
            a.error = "unknown option " + a.peek() + " (see muse info --help)";
            break;
        }
        if (!path.empty()) {
            a.error = "only one MODEL may be given";
            break;
        }
        path = a.take();
    }
    if (a.error.empty() && path.empty()) {
        a.error = "missing MODEL (usage: muse info MODEL.gguf)";
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse info: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }

    set_log_verbosity(verbose);
    int  rc = EXIT_OK;
    auto rt = load_model("muse info", path, mmproj, 0, true, nullptr, rc);
    if (!rt) {
        return rc;
    }
    const model_description & i = rt->describe();
    if (as_json) {
        nlohmann::ordered_json j = {
            { "path", i.path },
            { "architecture", i.architecture },
            { "name", i.name },
            { "description", i.description },
            { "parameters", i.n_params },
            { "size_bytes", i.size_bytes },
            { "context_length", i.n_ctx_train },
            { "embedding_length", i.n_embd },
            { "layers", i.n_layer },
            { "heads", i.n_head },
            { "vocab_size", i.n_vocab },
            { "chat_template", i.template_family },
            { "reasoning", i.supports_reasoning },
            { "tools", i.supports_tools },
            { "projector", i.has_projector ? nlohmann::ordered_json{ { "path", i.projector_path },
                                                                     { "vision", i.projector_vision },
                                                                     { "audio", i.projector_audio } }
                                           : nlohmann::ordered_json(nullptr) },
        };
        printf("%s\n", j.dump(2).c_str());
        return EXIT_OK;
    }
    printf("model          %s\n", i.path.c_str());
    printf("architecture   %s\n", i.architecture.c_str());
    if (!i.name.empty()) {
        printf("name           %s\n", i.name.c_str());
    }
    printf("description    %s\n", i.description.c_str());
    printf("parameters     %llu (%.2f M)\n", (unsigned long long) i.n_params, i.n_params / 1e6);
    printf("size           %.2f MiB\n", i.size_bytes / 1048576.0);
    printf("context        %d tokens (trained)\n", i.n_ctx_train);
    printf("shape          %d layers, %d embedding, %d heads, %d vocab\n", i.n_layer, i.n_embd, i.n_head, i.n_vocab);
    printf("chat template  %s\n", i.template_family.c_str());
    printf("reasoning      %s\n", i.supports_reasoning ? "yes (on/off, budget)" : "no");
    printf("tool calls     %s\n", i.supports_tools ? "yes" : "no (the chat template has none: Muse shows it no tools)");
    if (i.has_projector) {
        printf("projector      %s (%s%s)\n", i.projector_path.c_str(), i.projector_vision ? "vision" : "",
               i.projector_audio ? (i.projector_vision ? ", audio" : "audio") : "");
    } else {
        printf("projector      none\n");
    }
    return EXIT_OK;
}

}  // namespace muse::cli
