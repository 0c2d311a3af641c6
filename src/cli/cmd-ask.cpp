// muse ask PROMPT: one question, one streamed answer.

#include "answer-view.h"
#include "ask-flags.h"
#include "safety-flags.h"
#include "cli.h"
#include "commands.h"

#include "app/assistant.h"
#include "app/files.h"
#include "app/result-json.h"
#include "app/runtime.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <semaphore.h>
#include <thread>

namespace muse::cli {

static std::atomic<bool> g_interrupted{ false };
static std::atomic<bool> g_generating{ false };  // before: nothing to stop cleanly
static sem_t             g_sigint;  // posted by the handler (sem_post is async-signal-safe)
static_assert(std::atomic<bool>::is_always_lock_free);

// Installed before anything slow (reading attachments, loading the model): Ctrl-C then leaves
// at once; once the answer is being generated, the first stops it cleanly (a relay thread turns
// the post into the request's cancel, which a handler may not do itself).
static void on_sigint(int) {
    if (!g_generating.load() || g_interrupted.exchange(true)) {
        std::_Exit(EXIT_CANCELLED);
    }
    sem_post(&g_sigint);
}

// Attachments first: a bad file is the request's fault and fails before the model loads.
// -1: all read; else the exit code.
static int read_attachments(const ask_flags & f, ask_input & in) {
    for (const auto & file : f.image_files) {
        if (error e = add_image_file(in, file)) {
            fprintf(stderr, "muse ask: --image %s\n", e.message.c_str());
            return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : EXIT_USAGE;
        }
    }
    for (const auto & file : f.data_files) {
        if (error e = add_table_file(in, file)) {
            fprintf(stderr, "muse ask: --data %s\n", e.message.c_str());
            return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : EXIT_USAGE;
        }
    }
    return -1;
}

// --json: one object, the model and the whole trace.
static void print_json(const model_description & m, const std::string & model_path, bool generated, const ask_result & r,
                       const ask_output & out) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["model"]       = m.description;
    j["model_path"]  = model_path;
    j["smoke_model"] = generated;
    const nlohmann::ordered_json body = to_json(r);  // kept alive: items() refers into it
    for (auto & [k, v] : body.items()) j[k] = v;
    j["attachments"] = out.attachments;
    j["tools"]       = out.tools;  // what the agents were offered
    // Model text cut mid-character (a cancelled or pruned agent) must not break the JSON.
    printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    fflush(stdout);
}

int cmd_ask(int argc, char ** argv) {
    // A background job of a non-interactive shell starts with SIGINT ignored: the handler is set
    // here, before the model loads, so Ctrl-C (or kill -INT) is never lost.
    std::signal(SIGINT, on_sigint);
    ask_flags f;
    if (std::string e = parse_ask_flags(argc, argv, 2, f); !e.empty()) {
        fprintf(stderr, "muse ask: %s\n", e.c_str());
        return EXIT_USAGE;
    }
    if (f.help) {
        fputs(ask_help().c_str(), stdout);
        return EXIT_OK;
    }
    // The request as the one door takes it (the same as the HTTP API's): the attachments are
    // read into it now, before the model loads.
    ask_input in;
    in.request.opt = f.opt;
    if (!f.system_prompt.empty()) in.request.messages.push_back({ "system", f.system_prompt });
    in.request.messages.push_back({ "user", f.prompt });
    if (int rc = read_attachments(f, in); rc >= 0) return rc;

    set_log_verbosity(f.verbose);
    int              rc        = EXIT_OK;
    bool             generated = false;
    assistant_params door_params;
    if (std::string e = build_safety(f.safety, door_params.safety); !e.empty()) {
        fprintf(stderr, "muse ask: %s\n", e.c_str());
        return EXIT_USAGE;
    }
    std::unique_ptr<runtime> rt;
    if (!f.backend_urls.empty()) {
        rt = connect_backends("muse ask", f.backend_urls, f.remote, f.model_path, f.mmproj, f.rpc_servers, door_params, rc);
        if (!rt) return rc;
    } else {
        rt = load_model("muse ask", f.model_path, f.mmproj, f.threads, f.as_json,
                        "note: using the generated smoke-test model (random weights: the text below is meaningless).\n"
                        "      For real answers: muse ask --model /path/to/model.gguf \"...\"\n", rc, &generated, &f.rpc_servers);
        if (!rt) return rc;
        if (error err = rt->start(engine_options_for(f.opt, f.ctx, f.threads, f.draft), door_params)) {
            fprintf(stderr, "muse ask: %s\n", err.message.c_str());
            return exit_code_for(err.code);
        }
    }
    if (f.opt.mode == MODE_THINKING && !rt->describe().supports_reasoning) {
        fprintf(stderr, "note: this model's chat template has no reasoning mode; answering directly.\n");
    }
    assistant & door = rt->door();

    g_generating = true;
    answer_printer print(f, f.opt.mode);
    ask_output     out;
    ask_refusal    why;
    // Ctrl-C cancels the run through the relay; the relay ends with the run.
    cancel_source stop;
    std::thread   relay([&stop] {
        while (sem_wait(&g_sigint) != 0) {}
        if (g_interrupted) stop.request_stop();
    });
    const error e = door.ask(std::move(in), [&](int, const ask_event & ev) { print.on(ev); }, stop.get_token(), out, &why);
    sem_post(&g_sigint);
    relay.join();
    if (e) {
        fprintf(stderr, "muse ask: %s\n", e.message.c_str());
        return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : e.code == ERROR_ENGINE_STOPPED ? EXIT_CANCELLED : EXIT_USAGE;
    }
    const ask_result & r = out.results.front();
    if (f.as_json) {
        print_json(rt->describe(), f.model_path, generated, r, out);
    } else {
        print.finish(r);
    }
    if (r.finish == FINISH_CANCELLED || g_interrupted) {
        fprintf(stderr, "muse ask: cancelled\n");
        return EXIT_CANCELLED;
    }
    if (r.err) {
        fprintf(stderr, "muse ask: %s\n", r.err.message.c_str());
        return exit_code_for(r.err.code);
    }
    return EXIT_OK;
}

}  // namespace muse::cli
