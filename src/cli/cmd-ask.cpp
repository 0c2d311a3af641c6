// muse ask PROMPT: one question, one streamed answer.

#include "ask-flags.h"
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

// The live view of a contemplating request: one line per agent on stderr, redrawn in place
// on a terminal, or one line per change otherwise.
class agent_view {
  public:
    agent_view(bool tty, bool enabled) : tty(tty), enabled(enabled) {}

    void on(const ask_event & ev) {
        if (!enabled) {
            return;
        }
        switch (ev.type) {
            case ask_event::AGENT_START:
                rows.push_back({ ev.agent, agent_kind_name(ev.kind), ev.role, 0, "thinking" });
                if (!tty) {
                    fprintf(stderr, "[agent %d] %s: %s started\n", ev.agent, agent_kind_name(ev.kind), ev.role.c_str());
                }
                break;
            case ask_event::AGENT_DELTA:
                if (row * r = find(ev.agent)) {
                    r->tokens = ev.tokens;
                    r->state  = ev.delta == chat_event::REASONING ? "thinking" : "answering";
                }
                break;
            case ask_event::AGENT_TOOL:
                if (!tty) {
                    fprintf(stderr, "[agent %d] tool: %s\n", ev.agent, ev.text.c_str());
                }
                break;
            case ask_event::AGENT_END:
                if (row * r = find(ev.agent)) {
                    r->tokens = ev.tokens;
                    r->state  = ev.detail;
                }
                if (!tty) {
                    fprintf(stderr, "[agent %d] %s after %d tokens\n", ev.agent, ev.detail.c_str(), ev.tokens);
                }
                break;
            case ask_event::PLAN:
                fprintf(stderr, "%splan: %s\n", tty ? clear_lines().c_str() : "", ev.text.c_str());
                drawn = 0;
                break;
            case ask_event::AGGREGATE:
                redraw(true);
                fprintf(stderr, "%s\n", ev.text.c_str());
                return;
            case ask_event::MODE:
                return;
        }
        redraw(false);
    }

  private:
    struct row {
        int         agent;
        std::string kind, role;
        int32_t     tokens;
        std::string state;
    };
    row * find(int agent) {
        for (auto & r : rows) {
            if (r.agent == agent) {
                return &r;
            }
        }
        return nullptr;
    }
    std::string clear_lines() {
        std::string s;
        for (int i = 0; i < drawn; ++i) {
            s += "\033[1A\033[2K";
        }
        return s;
    }
    void redraw(bool force) {
        if (!tty) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!force && now - last < std::chrono::milliseconds(100)) {
            return;
        }
        last          = now;
        std::string s = clear_lines();
        for (const auto & r : rows) {
            char line[256];
            snprintf(line, sizeof(line), "  [%d] %-11s %-26.26s %6d tok  %s\n", r.agent, r.kind.c_str(), r.role.c_str(),
                     r.tokens, r.state.c_str());
            s += line;
        }
        drawn = (int) rows.size();
        fputs(s.c_str(), stderr);
        fflush(stderr);
    }

    bool                                  tty, enabled;
    std::vector<row>                      rows;
    int                                   drawn = 0;
    std::chrono::steady_clock::time_point last;
};

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

// What `muse ask` prints while the answer comes: the answering agent's text (reasoning dimmed
// on a terminal), or the contemplating agents' live view on stderr.
class answer_printer {
  public:
    answer_printer(const ask_flags & f, ask_mode requested) :
        f(f), requested(requested), mode_used(requested), show_reasoning(!f.hide_reasoning && !f.as_json && stdout_is_tty()),
        view(stderr_is_tty(), !f.as_json && (f.show_agents || stderr_is_tty())) {}

    void on(const ask_event & ev) {
        if (ev.type == ask_event::MODE) {
            parse_ask_mode(ev.text, mode_used);
            if (!f.as_json && requested == MODE_AUTO) fprintf(stderr, "mode: %s (%s)\n", ev.text.c_str(), ev.detail.c_str());
            return;
        }
        if (mode_used == MODE_CONTEMPLATING) return view.on(ev);
        // Instant and thinking: stream the answering agent.
        if (f.as_json || ev.type != ask_event::AGENT_DELTA || ev.kind != AGENT_ANSWER) return;
        if (ev.delta == chat_event::REASONING) {
            if (show_reasoning) {
                fputs(in_reasoning ? "" : "\033[2m", stdout);
                in_reasoning = true;
                fputs(ev.text.c_str(), stdout);
                fflush(stdout);
            }
            return;
        }
        if (in_reasoning) {
            fputs("\033[0m\n\n", stdout);
            in_reasoning = false;
        }
        fputs(ev.text.c_str(), stdout);
        fflush(stdout);
        streamed = true;
    }

    // After the run: the contemplating answer (and agents with --show-agents), the last newline.
    void finish(const ask_result & r) {
        if (in_reasoning) fputs("\033[0m", stdout);
        if (r.mode == MODE_CONTEMPLATING) {
            if (f.show_agents) {
                for (const auto & t : r.agents) {
                    printf("--- agent %d (%s, %s)%s\n%s\n", t.index, agent_kind_name(t.kind), t.role.c_str(), t.pruned ? " [pruned]" : "",
                           t.answer.c_str());
                }
                printf("--- answer\n");
            }
            fputs(r.answer.c_str(), stdout);
            streamed = true;
        }
        if (streamed || !r.reasoning.empty()) fputs("\n", stdout);
        fflush(stdout);
    }

  private:
    const ask_flags & f;
    const ask_mode    requested;
    ask_mode          mode_used;
    const bool        show_reasoning;
    bool              in_reasoning = false;
    bool              streamed     = false;
    agent_view        view;
};

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
    int  rc        = EXIT_OK;
    bool generated = false;
    auto rt = load_model("muse ask", f.model_path, f.mmproj, f.threads, f.as_json,
                         "note: using the generated smoke-test model (random weights: the text below is meaningless).\n"
                         "      For real answers: muse ask --model /path/to/model.gguf \"...\"\n", rc, &generated);
    if (!rt) return rc;
    if (error err = rt->start(engine_options_for(f.opt, f.ctx, f.threads))) {
        fprintf(stderr, "muse ask: %s\n", err.message.c_str());
        return exit_code_for(err.code);
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
