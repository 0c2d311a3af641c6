// muse ask PROMPT: one question, one streamed answer.

#include "cli.h"
#include "commands.h"

#include "backend/local-backend.h"
#include "engine/engine.h"
#include "engine/logging.h"
#include "engine/model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

namespace muse::cli {

static const char * k_ask_help =
    "usage: muse ask PROMPT [options]\n"
    "\n"
    "Answers PROMPT with a local GGUF model, streaming reasoning (dimmed) and the answer.\n"
    "Without --model, Muse uses $MUSE_MODEL or a generated smoke-test model whose random\n"
    "weights give meaningless text: pass --model FILE.gguf for real answers.\n"
    "\n"
    "  --model FILE        GGUF model to load\n"
    "  --mmproj FILE       vision projector to attach (reported; images come later)\n"
    "  --system TEXT       system prompt\n"
    "  --reasoning MODE    on | off | auto (default auto: the model's template decides)\n"
    "  --budget N          thinking tokens before budget forcing closes reasoning (default unlimited)\n"
    "  --max-tokens N      tokens to generate at most (default 512; -1 = until the context is full)\n"
    "  --temp T            sampling temperature, 0 = greedy (default 0.8)\n"
    "  --top-k N           (default 40)      --top-p P      (default 0.95)\n"
    "  --min-p P           (default 0.05)    --repeat-penalty R (default 1.0 = off)\n"
    "  --seed N            sampling seed (default random)\n"
    "  --stop TEXT         stop at TEXT (repeatable, at most 16)\n"
    "  --json-schema JSON  constrain the answer to this JSON schema\n"
    "  --threads N         CPU threads (default: all)\n"
    "  --ctx N             context size in tokens (default 4096, or the model's trained length if smaller)\n"
    "  --json              print one JSON object (answer, reasoning, usage) instead of streaming\n"
    "  --hide-reasoning    do not print reasoning\n"
    "  --verbose           show llama.cpp's own log\n"
    "\n"
    "Ctrl-C stops generation cleanly and prints what was produced.\n";

static std::atomic<bool> g_interrupted{ false };

static void on_sigint(int) {
    if (g_interrupted.exchange(true)) {
        std::_Exit(EXIT_CANCELLED);  // second Ctrl-C: leave at once
    }
}

int cmd_ask(int argc, char ** argv) {
    args                     a(argc, argv, 2);
    std::string              prompt, model_path, mmproj, system_prompt, reasoning = "auto", schema;
    chat_request             req;
    engine_params            ep;
    int32_t                  budget = -1, max_tokens = 512, threads = 0, ctx = 0, seed = -1;
    bool                     as_json = false, hide_reasoning = false;
    int                      verbose = 0;
    std::string              stop;
    req.sampling = sampling_params{};

    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            fputs(k_ask_help, stdout);
            return EXIT_OK;
        }
        if (a.value("--model", model_path) || a.value("-m", model_path)) continue;
        if (a.value("--mmproj", mmproj)) continue;
        if (a.value("--system", system_prompt)) continue;
        if (a.value("--reasoning", reasoning)) continue;
        if (a.value("--json-schema", schema)) continue;
        if (a.value("--stop", stop)) { req.stop.push_back(stop); continue; }
        if (a.int_value("--budget", -1, 1 << 20, budget)) continue;
        if (a.int_value("--max-tokens", -1, 1 << 22, max_tokens) || a.int_value("-n", -1, 1 << 22, max_tokens)) continue;
        if (a.float_value("--temp", 0, 100, req.sampling.temperature)) continue;
        if (a.int_value("--top-k", 0, 1000000, req.sampling.top_k)) continue;
        if (a.float_value("--top-p", 1e-6, 1, req.sampling.top_p)) continue;
        if (a.float_value("--min-p", 0, 1, req.sampling.min_p)) continue;
        if (a.float_value("--repeat-penalty", 1e-6, 10, req.sampling.repeat_penalty)) continue;
        if (a.int_value("--seed", -1, INT32_MAX, seed)) continue;
        if (a.int_value("--threads", 0, 1024, threads) || a.int_value("-t", 0, 1024, threads)) continue;
        if (a.int_value("--ctx", 16, 1 << 22, ctx) || a.int_value("-c", 16, 1 << 22, ctx)) continue;
        if (a.flag("--json")) { as_json = true; continue; }
        if (a.flag("--hide-reasoning")) { hide_reasoning = true; continue; }
        if (a.flag("--verbose") || a.flag("-v")) { verbose = 2; continue; }
        if (a.peek().rfind("-", 0) == 0 && a.peek() != "-") {
            a.error = "unknown option " + a.peek() + " (see muse ask --help)";
            break;
        }
        if (!prompt.empty()) {
            a.error = "only one PROMPT may be given; quote it";
            break;
        }
        prompt = a.take();
    }
    if (a.error.empty() && prompt.empty()) {
        a.error = "missing PROMPT (usage: muse ask \"your question\")";
    }
    if (a.error.empty()) {
        if (reasoning == "on") req.reasoning = REASONING_ON;
        else if (reasoning == "off") req.reasoning = REASONING_OFF;
        else if (reasoning == "auto") req.reasoning = REASONING_AUTO;
        else a.error = "--reasoning must be on, off or auto, got '" + reasoning + "'";
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse ask: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }

    log_init(verbose);
    bool        generated = false;
    std::string err_msg;
    if (model_path.empty() && !default_model(model_path, generated, err_msg, as_json)) {
        fprintf(stderr, "muse ask: %s\n", err_msg.c_str());
        return EXIT_MODEL;
    }
    if (generated) {
        fprintf(stderr, "note: using the generated smoke-test model (random weights: the text below is meaningless).\n"
                        "      For real answers: muse ask --model /path/to/model.gguf \"...\"\n");
    }

    model_params mp;
    mp.path        = model_path;
    mp.mmproj_path = mmproj;
    mp.n_threads   = threads;
    mp.progress    = [](float p) { progress_line("loading", p); return true; };
    error err;
    auto  m = model::load(mp, err);
    progress_done();
    if (!m) {
        fprintf(stderr, "muse ask: %s\n", err.message.c_str());
        return exit_code_for(err.code);
    }
    // Default: 4096, or less when the model was trained on less.
    ep.n_ctx     = ctx > 0 ? ctx : std::clamp(m->info().n_ctx_train, 16, 4096);
    ep.n_threads = threads;
    ep.n_seq_max = 4;
    auto eng     = engine::create(*m, ep, err);
    if (!eng) {
        fprintf(stderr, "muse ask: %s\n", err.message.c_str());
        return exit_code_for(err.code);
    }
    if (req.reasoning == REASONING_ON && !m->info().supports_reasoning) {
        fprintf(stderr, "note: this model's chat template has no reasoning mode; answering directly.\n");
    }

    if (!system_prompt.empty()) {
        req.messages.push_back({ "system", system_prompt });
    }
    req.messages.push_back({ "user", prompt });
    req.reasoning_budget = budget;
    req.max_tokens       = max_tokens;
    req.json_schema      = schema;
    if (seed >= 0) {
        req.sampling.seed = (uint32_t) seed;
    }

    local_backend be(*eng);
    auto          stream = be.start(req);

    std::signal(SIGINT, on_sigint);
    std::atomic<bool> reading{ true };
    std::thread       watcher([&] {
        while (reading) {
            if (g_interrupted) {
                stream->cancel();
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });

    const bool  tty = stdout_is_tty();
    const bool  show_reasoning = !hide_reasoning && !as_json && tty;
    chat_result r;
    chat_event  ev;
    bool        in_reasoning = false;
    while (stream->next(ev)) {
        r.add(ev);
        if (ev.type == chat_event::REASONING && show_reasoning) {
            fputs(in_reasoning ? "" : "\033[2m", stdout);
            in_reasoning = true;
            fputs(ev.text.c_str(), stdout);
            fflush(stdout);
        } else if (ev.type == chat_event::CONTENT && !as_json) {
            if (in_reasoning) {
                fputs("\033[0m\n\n", stdout);
                in_reasoning = false;
            }
            fputs(ev.text.c_str(), stdout);
            fflush(stdout);
        }
    }
    reading = false;
    watcher.join();
    if (in_reasoning) {
        fputs("\033[0m", stdout);
    }

    if (as_json) {
        nlohmann::ordered_json calls = nlohmann::ordered_json::array();
        for (const auto & tc : r.tool_calls) {
            calls.push_back({ { "id", tc.id }, { "name", tc.name }, { "arguments", tc.arguments } });
        }
        nlohmann::ordered_json j = {
            { "model", m->info().description },
            { "model_path", model_path },
            { "smoke_model", generated },
            { "reasoning_content", r.reasoning },
            { "content", r.content },
            { "tool_calls", calls },
            { "finish_reason", finish_reason_name(r.finish) },
            { "usage", { { "prompt_tokens", r.use.prompt_tokens },
                         { "prompt_tokens_prefilled", r.use.prompt_tokens_prefilled },
                         { "prompt_tokens_reused", r.use.prompt_tokens_reused },
                         { "completion_tokens", r.use.completion_tokens } } },
            { "timings", { { "prefill_ms", r.use.prefill_ms }, { "generate_ms", r.use.generate_ms } } },
        };
        if (r.err) {
            j["error"] = { { "code", error_code_name(r.err.code) }, { "message", r.err.message } };
        }
        printf("%s\n", j.dump(2).c_str());
    } else if (!r.content.empty() || !r.reasoning.empty()) {
        fputs("\n", stdout);
    }
    fflush(stdout);

    if (r.err) {
        fprintf(stderr, "muse ask: %s\n", r.err.message.c_str());
        return exit_code_for(r.err.code);
    }
    if (r.finish == FINISH_CANCELLED) {
        fprintf(stderr, "muse ask: cancelled\n");
        return EXIT_CANCELLED;
    }
    return EXIT_OK;
}

}  // namespace muse::cli
