// muse eval TASKS.jsonl: known-answer questions through the reasoning modes, one table row per
// mode (accuracy, tokens, time, agreement, pruning). Flags -> app::run_eval -> printing.

#include "cli.h"
#include "commands.h"

#include "app/eval.h"
#include "app/runtime.h"

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <semaphore.h>
#include <sstream>
#include <thread>

namespace muse::cli {

static std::atomic<bool> g_eval_running{ false };
static std::atomic<bool> g_eval_interrupted{ false };
static sem_t             g_eval_sigint;

// Before the model loads Ctrl-C leaves at once; while the questions run, the first stops them
// (the table of what was answered is still printed) and a second leaves at once.
static void on_eval_sigint(int) {
    if (!g_eval_running.load() || g_eval_interrupted.exchange(true)) std::_Exit(EXIT_CANCELLED);
    sem_post(&g_eval_sigint);
}

static std::string eval_help() {
    auto range = [](const limit & l) { return limit_range_text(l); };
    return "usage: muse eval TASKS.jsonl [options]\n"
           "\n"
           "Runs every question of a task file through each reasoning mode and prints, per mode,\n"
           "the share of exact answers, tokens and time per question, the vote's agreement\n"
           "(contemplating) and the share of agents pruned. A task file has one JSON object per\n"
           "line: {\"question\": \"...\", \"answer\": \"...\"} (GSM8K's files as they are: an answer\n"
           "ending in \"#### 72\" is scored on 72). Answers are compared after normalisation\n"
           "(\"Final answer: 1,000\" == \"1000\").\n"
           "\n"
           "options:\n"
           "  -m, --model FILE    GGUF model, or tiny (Muse-Tiny) or smoke (default: $MUSE_MODEL, else tiny)\n"
           "  --rpc HOST:PORT,... the model's layers on ggml rpc-servers (trusted networks only)\n"
           "  --backend URL       evaluate the model an OpenAI-compatible server serves (llama-server,\n"
           "                      vLLM, another muse serve) instead of a local one; repeat it to spread\n"
           "                      the questions over several servers of one model\n"
           "  --backend-key KEY   its key; --backend-model NAME: the model to ask for\n"
           "  --modes LIST        comma-separated: instant, thinking, contemplating, auto\n"
           "                      (default: instant,thinking,contemplating)\n"
           "  --limit N           the first N questions only (default: all, at most 100000)\n"
           "  --agents K          contemplating: solver agents " + range(k_limit_agents) + "\n"
           "  --budget N          thinking tokens per reasoning agent " + range(k_limit_thinking_budget) + "\n"
           "  --max-tokens N      answer tokens per agent " + range(k_limit_max_tokens) + "\n"
           "  --temp T            sampling temperature " + range(k_limit_temperature) + "\n"
           "  --top-k N           " + range(k_limit_top_k) + "; 0 = the whole vocabulary\n"
           "  --top-p P           " + range(k_limit_top_p) + "; 1 = off\n"
           "  --min-p P           " + range(k_limit_min_p) + "; 0 = off (top-k 0, top-p 1 and\n"
           "                      min-p 0 sample from the model's whole distribution)\n"
           "  --seed N            sampling seed " + range(k_limit_seed) + "; each question samples\n"
           "                      from its own stream, derived from N and its place in the file\n"
           "  --no-tools          no calculator or date tool\n"
           "  --no-planner        contemplating: skip the plan (one task)\n"
           "  --planner-budget N  contemplating: the planner's tokens, all told " + range(k_limit_planner_budget) + "\n"
           "  --no-prune          contemplating: never stop a low-confidence agent early\n"
           "  --verify            contemplating: check the most-voted answers when the agents disagree\n"
           "  --vote RULE         contemplating: weighted (default) or majority, as in muse ask\n"
           "  --system TEXT       a system prompt before every question\n"
           "  -t, --threads N     CPU threads (default: all)\n"
           "  -c, --ctx N         context size (default: sized for the modes' agents)\n"
           "  --draft N           prompt-lookup drafts per sequence and step, 0..16 (default 4, 0 = off)\n"
           "  --json              print the report as JSON (per mode and per question)\n"
           "  -q, --quiet         no progress line\n"
           "  -v, --verbose       llama.cpp's log on stderr\n"
           "  -h, --help          this help\n"
           "\n"
           "Ctrl-C stops after the question that runs and prints what was answered (exit 130).\n";
}

int cmd_eval(int argc, char ** argv) {
    std::signal(SIGINT, on_eval_sigint);
    sem_init(&g_eval_sigint, 0, 0);
    args        a(argc, argv, 2);
    std::string tasks_path, model_path, modes_list = "instant,thinking,contemplating", vote_name;
    int32_t     limit = 0, threads = 0, ctx = 0, draft = -1;
    std::vector<std::string> rpc_servers, backend_urls;
    remote_params            remote;
    bool        as_json = false, quiet = false;
    int         verbose = 0;
    eval_params p;
    double      v = 0;
    while (!a.done() && a.error.empty()) {
        if (a.flag("-h") || a.flag("--help")) {
            fputs(eval_help().c_str(), stdout);
            return EXIT_OK;
        }
        if (a.value("-m", model_path) || a.value("--model", model_path)) continue;
        if (std::string u; a.value("--backend", u)) { backend_urls.push_back(u); continue; }
        if (a.value("--backend-key", remote.api_key)) continue;
        if (a.value("--backend-model", remote.model)) continue;
        if (a.value("--modes", modes_list)) continue;
        if (a.int_value("--limit", 1, (int64_t) k_eval_max_tasks, limit)) continue;
        if (a.limit_value(k_limit_agents, v)) { p.opt.agents = (int32_t) v; continue; }
        if (a.limit_value(k_limit_thinking_budget, v)) { p.opt.budget = (int32_t) v; continue; }
        if (a.limit_value(k_limit_max_tokens, v)) { p.opt.answer_tokens = (int32_t) v; continue; }
        if (a.limit_value(k_limit_temperature, v)) { p.opt.sampling.temperature = (float) v; continue; }
        if (a.limit_value(k_limit_top_k, v)) { p.opt.sampling.top_k = (int32_t) v; continue; }
        if (a.limit_value(k_limit_top_p, v)) { p.opt.sampling.top_p = (float) v; continue; }
        if (a.limit_value(k_limit_min_p, v)) { p.opt.sampling.min_p = (float) v; continue; }
        if (a.limit_value(k_limit_seed, v)) { p.opt.sampling.seed = v < 0 ? 0xFFFFFFFFu : (uint32_t) v; continue; }
        if (a.flag("--no-tools")) { p.opt.tools.clear(); continue; }
        if (a.flag("--no-planner")) { p.opt.planner = false; continue; }
        if (a.limit_value(k_limit_planner_budget, v)) { p.opt.plan_tokens = (int32_t) v; continue; }
        if (a.flag("--no-prune")) { p.opt.prune = false; continue; }
        if (a.flag("--verify")) { p.opt.verify = true; continue; }
        if (a.value("--vote", vote_name)) {
            if (a.error.empty() && !parse_vote_rule(vote_name, p.opt.vote)) {
                a.error = "--vote must be weighted or majority, got '" + vote_name + "'";
            }
            continue;
        }
        if (a.value("--system", p.system_prompt)) continue;
        if (std::string rpc; a.value("--rpc", rpc)) {
            if (a.error.empty()) {
                if (error e = parse_rpc_list(rpc, rpc_servers)) a.error = "--rpc: " + e.message;
            }
            continue;
        }
        if (a.int_value("-t", 1, 1024, threads) || a.int_value("--threads", 1, 1024, threads)) continue;
        if (a.int_value("-c", 256, 1 << 20, ctx) || a.int_value("--ctx", 256, 1 << 20, ctx)) continue;
        if (a.int_value("--draft", 0, 16, draft)) continue;
        if (a.flag("--json")) { as_json = true; continue; }
        if (a.flag("-q") || a.flag("--quiet")) { quiet = true; continue; }
        if (a.flag("-v") || a.flag("--verbose")) { verbose = 1; continue; }
        const std::string x = a.peek();
        if (!x.empty() && x[0] == '-') {
            fprintf(stderr, "muse eval: unknown option '%s' (see muse eval --help)\n", x.c_str());
            return EXIT_USAGE;
        }
        if (!tasks_path.empty()) {
            fprintf(stderr, "muse eval: one task file, not '%s' too\n", x.c_str());
            return EXIT_USAGE;
        }
        tasks_path = a.take();
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse eval: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }
    if (tasks_path.empty()) {
        fprintf(stderr, "muse eval: give a task file (JSON Lines of {\"question\", \"answer\"}); see muse eval --help\n");
        return EXIT_USAGE;
    }
    p.modes.clear();
    {
        std::stringstream ss(modes_list);
        std::string       name;
        while (std::getline(ss, name, ',')) {
            ask_mode m;
            if (!parse_ask_mode(name, m)) {
                fprintf(stderr, "muse eval: --modes: unknown mode '%s' (instant, thinking, contemplating or auto)\n", name.c_str());
                return EXIT_USAGE;
            }
            p.modes.push_back(m);
        }
        if (p.modes.empty()) {
            fprintf(stderr, "muse eval: --modes: name at least one mode\n");
            return EXIT_USAGE;
        }
    }
    // The questions are read before the model loads: a bad file fails at once.
    std::vector<eval_task> tasks;
    if (error e = read_eval_tasks(tasks_path, (size_t) limit, tasks)) {
        fprintf(stderr, "muse eval: %s\n", e.message.c_str());
        return e.code == ERROR_FILE_NOT_FOUND ? EXIT_USAGE : exit_code_for(e.code);
    }

    set_log_verbosity(verbose);
    std::unique_ptr<runtime> rt;
    if (!backend_urls.empty()) {
        int rc = EXIT_OK;
        rt     = connect_backends("muse eval", backend_urls, remote, model_path, "", rpc_servers, {}, rc);
        if (!rt) return rc;
        model_path = backend_urls.front();
    } else {
        int rc = EXIT_OK;
        rt     = load_model("muse eval", model_path, "", threads, quiet || as_json,
                            "note: using the generated smoke-test model (random weights: expect no right answers).\n"
                            "      For a real measurement: muse eval TASKS --model /path/to/model.gguf\n", rc, nullptr, &rpc_servers);
        if (!rt) return rc;
        ask_options sizing = p.opt;
        for (ask_mode m : p.modes) {
            if (m == MODE_CONTEMPLATING || m == MODE_AUTO) sizing.mode = MODE_CONTEMPLATING;
        }
        if (error err = rt->start(engine_options_for(sizing, ctx, threads, draft))) {
            fprintf(stderr, "muse eval: %s\n", err.message.c_str());
            return exit_code_for(err.code);
        }
    }

    const bool    show = !quiet && !as_json && stderr_is_tty();
    cancel_source stop;
    g_eval_running = true;
    std::thread relay([&stop] {
        while (sem_wait(&g_eval_sigint) != 0) {}
        if (g_eval_interrupted) stop.request_stop();
    });
    eval_report report;
    const error e = run_eval(rt->door(), tasks, p, [&](int done, int total) {
        if (show) progress_line("eval", (float) done / (float) total);
    }, stop.get_token(), report);
    sem_post(&g_eval_sigint);
    relay.join();
    if (show) progress_done();
    if (e) {
        fprintf(stderr, "muse eval: %s\n", e.message.c_str());
        return exit_code_for(e.code);
    }
    // The sampling every row used, so a report says how to reproduce it.
    const sampling_params & sp     = p.opt.sampling;
    const bool              random = sp.seed == 0xFFFFFFFFu;
    if (as_json) {
        nlohmann::ordered_json j = to_json(report, tasks);
        j["model"]      = rt->describe().description;
        j["model_path"] = model_path;
        auto r6         = [](float x) { return std::round((double) x * 1e6) / 1e6; };  // 0.95f, not 0.949999988
        j["sampling"]   = { { "temperature", r6(sp.temperature) },
                            { "top_k", sp.top_k },
                            { "top_p", r6(sp.top_p) },
                            { "min_p", r6(sp.min_p) },
                            { "seed", random ? nlohmann::ordered_json() : nlohmann::ordered_json(sp.seed) } };
        j["vote"]       = vote_rule_name(p.opt.vote);  // contemplating's aggregation
        printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    } else {
        const std::string seed = random ? std::string("a random seed") : "seed " + std::to_string(sp.seed);
        if (sp.temperature <= 0.0f) {
            printf("%s: %d questions from %s, greedy\n\n", rt->describe().description.c_str(), report.tasks,
                   tasks_path.c_str());
        } else {
            printf("%s: %d questions from %s, temperature %g, top-k %d, top-p %g, min-p %g, %s\n\n",
                   rt->describe().description.c_str(), report.tasks, tasks_path.c_str(), sp.temperature, sp.top_k,
                   sp.top_p, sp.min_p, seed.c_str());
        }
        fputs(eval_table(report).c_str(), stdout);
        if (p.opt.vote == VOTE_MAJORITY) {
            printf("(contemplating: majority vote, one ballot per agent)\n");
        }
    }
    fflush(stdout);
    if (report.cancelled) {
        fprintf(stderr, "muse eval: cancelled (the table shows the questions answered)\n");
        return EXIT_CANCELLED;
    }
    return EXIT_OK;
}

}  // namespace muse::cli
