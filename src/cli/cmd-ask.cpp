// muse ask PROMPT: one question, one streamed answer.

#include "cli.h"
#include "commands.h"

#include "app/assistant.h"
#include "backend/local-backend.h"
#include "reasoning/orchestrator.h"
#include "reasoning/result-json.h"
#include "engine/engine.h"
#include "engine/logging.h"
#include "engine/model.h"
#include "perception/attachments.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>

namespace muse::cli {

static const char * k_ask_help =
    "usage: muse ask PROMPT [options]\n"
    "\n"
    "Answers PROMPT with a local GGUF model in one of Muse's reasoning modes, streaming the\n"
    "reasoning (dimmed) and the answer. Without --model, Muse uses $MUSE_MODEL or a generated\n"
    "smoke-test model whose random weights give meaningless text: pass --model FILE.gguf.\n"
    "\n"
    "modes:\n"
    "  --mode MODE         instant | thinking | contemplating | auto (default auto: a router picks)\n"
    "                      instant: no reasoning, a direct answer\n"
    "                      thinking: one agent reasons within --budget, may call tools, answers\n"
    "                      contemplating: a planner splits the request, K agents reason in\n"
    "                      parallel from one shared prefill, then vote or a synthesiser answers\n"
    "  --reasoning on|off  shorthand for --mode thinking | instant\n"
    "  --agents K          contemplating: solver agents, 1-16 (default 4)\n"
    "  --budget N          thinking tokens per reasoning agent, 0-65536 (default 2048); budget\n"
    "                      forcing closes the reasoning when it is spent\n"
    "  --no-planner        contemplating: skip the plan (one task)\n"
    "  --max-plan-tasks N  contemplating: sub-tasks in a plan, 1-16 (default 6)\n"
    "  --no-prune          contemplating: never stop a low-confidence agent early\n"
    "  --prune-threshold X mean token log-probability below which an agent stops (default -5)\n"
    "  --refine            contemplating: one debate round in which agents may revise\n"
    "  --show-agents       contemplating: show the live agent view and every agent's answer\n"
    "  --router-model      auto: also let the model classify the request\n"
    "  --no-tools          no calculator / date / table tool   --max-tool-steps N (default 4)\n"
    "\n"
    "input:\n"
    "  --image FILE        an image: PNG, JPEG, BMP or GIF (repeatable, at most 16). With a\n"
    "                      vision projector (--mmproj) the model sees it, encoded once for all\n"
    "                      agents, and may call read_image_text for its OCR text; without one,\n"
    "                      Muse gives the model a delimited block with the size, dominant\n"
    "                      colours and the OCR text (Tesseract), marked as data\n"
    "  --data FILE         a table: CSV, TSV, JSON (array of objects or object of arrays) or JSON\n"
    "                      Lines (repeatable, at most 16). It loads into an in-memory SQLite\n"
    "                      database; its summary (schema, rows, column stats, sample rows) joins\n"
    "                      the prompt as data, and agents query it with the read-only query_table\n"
    "                      tool (one SELECT per call)\n"
    "\n"
    "generation:\n"
    "  --model FILE        GGUF model to load\n"
    "  --mmproj FILE       vision projector: --image then goes to the model as a picture\n"
    "  --system TEXT       system prompt\n"
    "  --max-tokens N      answer tokens after reasoning (default 512; -1 = no limit)\n"
    "  --temp T            sampling temperature, 0 = greedy (default 0.7)\n"
    "  --top-k N           (default 40)      --top-p P      (default 0.95)\n"
    "  --min-p P           (default 0.05)    --repeat-penalty R (default 1.0 = off)\n"
    "  --frequency-penalty F, --presence-penalty P   OpenAI's, -2..2 (default 0 = off);\n"
    "                      all three penalties look at the last 64 tokens\n"
    "  --seed N            sampling seed (default random)\n"
    "  --stop TEXT         stop the answer at TEXT (repeatable, at most 16)\n"
    "  --json-schema JSON  constrain the answer to this JSON schema (implies --mode instant)\n"
    "  --threads N         CPU threads (default: all)\n"
    "  --ctx N             KV cache size in tokens shared by all agents (default: enough for\n"
    "                      the mode, at least 4096)\n"
    "\n"
    "output:\n"
    "  --json              print one JSON object (answer, mode, plan, agents, vote, usage)\n"
    "  --hide-reasoning    do not print reasoning\n"
    "  --verbose           show llama.cpp's own log\n"
    "\n"
    "Ctrl-C stops generation cleanly and prints what was produced.\n";

static std::atomic<bool> g_interrupted{ false };
static std::atomic<bool> g_generating{ false };  // before: nothing to stop cleanly
static_assert(std::atomic<bool>::is_always_lock_free);

// Installed before anything slow (reading attachments, loading the model): Ctrl-C then leaves
// at once; once the answer is being generated, the first stops it cleanly.
static void on_sigint(int) {
    if (!g_generating.load() || g_interrupted.exchange(true)) {
        std::_Exit(EXIT_CANCELLED);
    }
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

int cmd_ask(int argc, char ** argv) {
    // A background job of a non-interactive shell starts with SIGINT ignored: the handler is set
    // here, before the model loads, so Ctrl-C (or kill -INT) is never lost.
    std::signal(SIGINT, on_sigint);
    args        a(argc, argv, 2);
    std::string prompt, model_path, mmproj, system_prompt, reasoning, mode_name, stop, data_path, image_path;
    std::vector<std::string> data_files, image_files;
    ask_request req;
    ask_options & opt = req.opt;
    int32_t     max_tokens = 512, threads = 0, ctx = 0, seed = -1;
    bool        as_json = false, hide_reasoning = false, show_agents = false;
    int         verbose = 0;

    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            fputs(k_ask_help, stdout);
            return EXIT_OK;
        }
        if (a.value("--model", model_path) || a.value("-m", model_path)) continue;
        if (a.value("--mmproj", mmproj)) continue;
        if (a.value("--system", system_prompt)) continue;
        if (a.value("--mode", mode_name)) continue;
        if (a.value("--reasoning", reasoning)) continue;
        if (a.value("--json-schema", opt.json_schema)) continue;
        if (a.value("--stop", stop)) { opt.stop.push_back(stop); continue; }
        if (a.int_value("--agents", 1, 16, opt.agents)) continue;
        if (a.int_value("--budget", 0, 65536, opt.budget)) continue;
        if (a.int_value("--max-plan-tasks", 1, 16, opt.max_plan_tasks)) continue;
        if (a.int_value("--max-tool-steps", 0, 32, opt.max_tool_steps)) continue;
        if (a.float_value("--prune-threshold", -100, 0, opt.prune_threshold)) continue;
        if (a.flag("--no-planner")) { opt.planner = false; continue; }
        if (a.flag("--no-prune")) { opt.prune = false; continue; }
        if (a.flag("--refine")) { opt.refine = true; continue; }
        if (a.flag("--router-model")) { opt.router_model = true; continue; }
        if (a.flag("--no-tools")) { opt.tools.clear(); continue; }
        if (a.value("--data", data_path)) { data_files.push_back(data_path); continue; }
        if (a.value("--image", image_path)) { image_files.push_back(image_path); continue; }
        if (a.flag("--show-agents")) { show_agents = true; continue; }
        if (a.int_value("--max-tokens", -1, 1 << 20, max_tokens) || a.int_value("-n", -1, 1 << 20, max_tokens)) continue;
        if (a.float_value("--temp", 0, 2, opt.sampling.temperature)) continue;
        if (a.int_value("--top-k", 0, 1000000, opt.sampling.top_k)) continue;
        if (a.float_value("--top-p", 1e-6, 1, opt.sampling.top_p)) continue;
        if (a.float_value("--min-p", 0, 1, opt.sampling.min_p)) continue;
        if (a.float_value("--repeat-penalty", 1e-6, 10, opt.sampling.repeat_penalty)) continue;
        if (a.float_value("--frequency-penalty", -2, 2, opt.sampling.frequency_penalty)) continue;
        if (a.float_value("--presence-penalty", -2, 2, opt.sampling.presence_penalty)) continue;
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
    if (a.error.empty() && !mode_name.empty() && !parse_ask_mode(mode_name, opt.mode)) {
        a.error = "--mode must be instant, thinking, contemplating or auto, got '" + mode_name + "'";
    }
    if (a.error.empty() && !reasoning.empty()) {
        if (!mode_name.empty()) a.error = "--reasoning and --mode cannot be combined; use --mode";
        else if (reasoning == "on") opt.mode = MODE_THINKING;
        else if (reasoning == "off") opt.mode = MODE_INSTANT;
        else if (reasoning != "auto") a.error = "--reasoning must be on, off or auto, got '" + reasoning + "'";
    }
    opt.answer_tokens = max_tokens < 0 ? (1 << 20) : std::max(1, max_tokens);
    if (seed >= 0) {
        opt.sampling.seed = (uint32_t) seed;
    }
    if (a.error.empty()) {
        // The rules every front end shares (app/assistant.h): the API applies the same.
        if (error e = check_ask_rules(req, 1, 1)) {
            a.error = e.message;
        }
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse ask: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }

    // Attachments first: a bad file is the request's fault and fails before the model loads.
    auto att = std::make_shared<attachments>();
    for (const auto & f : image_files) {
        if (error e = att->add_image_file(f)) {
            fprintf(stderr, "muse ask: --image %s\n", e.message.c_str());
            return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : EXIT_USAGE;
        }
    }
    for (const auto & f : data_files) {
        if (error e = att->add_table_file(f)) {
            fprintf(stderr, "muse ask: --data %s\n", e.message.c_str());
            return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : EXIT_USAGE;
        }
    }

    log_init(verbose);
    int  rc        = EXIT_OK;
    bool generated = false;
    auto m  = load_model("muse ask", model_path, mmproj, threads, as_json,
                         "note: using the generated smoke-test model (random weights: the text below is meaningless).\n"
                         "      For real answers: muse ask --model /path/to/model.gguf \"...\"\n", rc, &generated);
    if (!m) {
        return rc;
    }
    error err;
    // The KV cache is shared by every agent: room for the prompt and each reasoning agent's
    // budget and answer, at least 4096 cells, at most what a user would sensibly allocate.
    const bool    many    = opt.mode == MODE_CONTEMPLATING || opt.mode == MODE_AUTO;
    const int64_t per     = (int64_t) opt.budget + std::min(opt.answer_tokens, 4096) + 64;
    const int64_t need    = 2048 + (many ? (int64_t) (opt.agents + 2) * per : per);
    engine_params ep;
    ep.n_ctx     = ctx > 0 ? ctx : (int32_t) std::clamp<int64_t>(need, 4096, 131072);
    ep.n_threads = threads;
    ep.n_seq_max = std::max(8, 2 * opt.agents + std::max(6, opt.max_plan_tasks) + 2);
    auto eng     = engine::create(*m, ep, err);
    if (!eng) {
        fprintf(stderr, "muse ask: %s\n", err.message.c_str());
        return exit_code_for(err.code);
    }
    if (opt.mode == MODE_THINKING && !m->info().supports_reasoning) {
        fprintf(stderr, "note: this model's chat template has no reasoning mode; answering directly.\n");
    }

    if (!system_prompt.empty()) {
        req.messages.push_back({ "system", system_prompt });
    }
    req.messages.push_back({ "user", prompt });

    // The one door, as for the HTTP API: the attachments read above go in as they are.
    local_backend be(*eng);
    assistant     door(be);
    ask_input     in;
    in.request = std::move(req);
    in.read    = att;

    g_generating               = true;
    const bool tty             = stdout_is_tty();
    const bool show_reasoning  = !hide_reasoning && !as_json && tty;
    bool       in_reasoning    = false;
    bool       streamed        = false;
    agent_view view(stderr_is_tty(), !as_json && (show_agents || stderr_is_tty()));
    ask_mode   mode_used       = opt.mode;

    auto sink = [&](const ask_event & ev) {
        if (ev.type == ask_event::MODE) {
            parse_ask_mode(ev.text, mode_used);
            if (!as_json && opt.mode == MODE_AUTO) {
                fprintf(stderr, "mode: %s (%s)\n", ev.text.c_str(), ev.detail.c_str());
            }
            return;
        }
        if (mode_used == MODE_CONTEMPLATING) {
            view.on(ev);
            return;
        }
        // Instant and thinking: stream the answering agent.
        if (as_json || ev.type != ask_event::AGENT_DELTA || ev.kind != AGENT_ANSWER) {
            return;
        }
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
    };

    // The orchestrator watches the flag that Ctrl-C sets (a lock-free atomic, safe to set
    // in a signal handler).
    ask_output  out;
    ask_refusal why;
    if (error e = door.ask(std::move(in), [&](int, const ask_event & ev) { sink(ev); }, &g_interrupted, out, &why)) {
        fprintf(stderr, "muse ask: %s\n", e.message.c_str());
        return e.code == ERROR_INTERNAL ? EXIT_FAILURE_ : e.code == ERROR_ENGINE_STOPPED ? EXIT_CANCELLED : EXIT_USAGE;
    }
    ask_result & r = out.results.front();
    if (in_reasoning) {
        fputs("\033[0m", stdout);
    }

    if (as_json) {
        nlohmann::ordered_json j = nlohmann::ordered_json::object();
        j["model"]       = m->info().description;
        j["model_path"]  = model_path;
        j["smoke_model"] = generated;
        const nlohmann::ordered_json body = to_json(r);
        for (auto & [k, v] : body.items()) {
            j[k] = v;
        }
        j["attachments"] = out.attachments;
        j["tools"]       = out.tools;  // what the agents were offered
        // Model text cut mid-character (a cancelled or pruned agent) must not break the JSON.
        printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    } else {
        if (r.mode == MODE_CONTEMPLATING) {
            if (show_agents) {
                for (const auto & t : r.agents) {
                    printf("--- agent %d (%s, %s)%s\n%s\n", t.index, agent_kind_name(t.kind), t.role.c_str(),
                           t.pruned ? " [pruned]" : "", t.answer.c_str());
                }
                printf("--- answer\n");
            }
            fputs(r.answer.c_str(), stdout);
            streamed = true;
        }
        if (streamed || !r.reasoning.empty()) {
            fputs("\n", stdout);
        }
    }
    fflush(stdout);

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
