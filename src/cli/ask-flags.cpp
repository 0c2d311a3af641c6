#include "ask-flags.h"

#include "app/assistant.h"

#include "args.h"

#include <cstdio>

namespace muse::cli {

namespace {

std::string num(double v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.10g", v);
    return buf;
}

// "1..16", "(0, 1]" and ", default 4" for the help text.
std::string range(const limit & l) {
    return l.min_open ? "(" + num(l.min) + ", " + num(l.max) + "]" : num(l.min) + ".." + num(l.max);
}
std::string def(const limit & l) {
    return "default " + (l.def_text ? std::string(l.def_text) : num(l.def));
}

// A repeatable flag's value, counted against its limit.
std::string count_problem(const limit & l, size_t n) {
    if (n > (size_t) l.max) {
        return std::string(l.flag) + ": at most " + num(l.max) + " " + l.unit + " per request";
    }
    return "";
}

}  // namespace

std::string ask_help() {
    auto L = [](const limit & l) { return range(l) + ", " + def(l); };
    return std::string(
               "usage: muse ask PROMPT [options]\n"
               "\n"
               "Answers PROMPT with a local GGUF model in one of Muse's reasoning modes, streaming the\n"
               "reasoning (dimmed) and the answer. Without --model, Muse uses $MUSE_MODEL, else Muse-Tiny\n"
               "(--model tiny: trained here on arithmetic, it adds and subtracts and nothing else);\n"
               "--model smoke is a generated model whose random weights give meaningless text.\n"
               "\n"
               "modes:\n"
               "  --mode MODE         instant | thinking | contemplating | auto (default auto: a router picks)\n"
               "                      instant: no reasoning, a direct answer\n"
               "                      thinking: one agent reasons within --budget, may call tools, answers\n"
               "                      contemplating: a planner splits the request, K agents reason in\n"
               "                      parallel from one shared prefill, then vote or a synthesiser answers\n"
               "  --reasoning on|off  shorthand for --mode thinking | instant\n"
               "  --agents K          contemplating: solver agents (") +
           L(k_limit_agents) +
           ")\n"
           "  --budget N          thinking tokens per reasoning agent (" +
           L(k_limit_thinking_budget) +
           "); budget\n"
           "                      forcing closes the reasoning when it is spent\n"
           "  --no-planner        contemplating: skip the plan (one task)\n"
           "  --planner-budget N  contemplating: tokens the planner may spend on its plan, all told (" +
           L(k_limit_planner_budget) +
           ");\n"
           "                      a plan that does not fit is cut and the request runs as one task\n"
           "  --max-plan-tasks N  contemplating: sub-tasks in a plan (" +
           L(k_limit_max_plan_tasks) +
           ")\n"
           "  --no-prune          contemplating: never stop a low-confidence agent early\n"
           "  --prune-threshold X mean token log-probability below which an agent stops (" +
           L(k_limit_prune_threshold) +
           ")\n"
           "  --refine            contemplating: one debate round in which agents may revise\n"
           "  --verify            contemplating: when the agents disagree, check each of the most-voted\n"
           "                      answers (up to 3) with a verifier; an answer found right wins\n"
           "  --vote RULE         contemplating: weighted (default: each answer counts as sure as its\n"
           "                      agent was at its weakest stretch of tokens) or majority (one each)\n"
           "  --show-agents       contemplating: show the live agent view and every agent's answer\n"
           "  --router-model      auto: also let the model classify the request\n"
           "  --no-tools          no calculator / date / table tool\n"
           "  --max-tool-steps N  tool calls per agent (" +
           L(k_limit_max_tool_steps) +
           ")\n"
           "\n"
           "input:\n"
           "  --image FILE        an image: PNG, JPEG, BMP or GIF (repeatable, at most " +
           num(k_limit_images.max) +
           "). With a\n"
           "                      vision projector (--mmproj) the model sees it, encoded once for all\n"
           "                      agents, and may call read_image_text for its OCR text; without one,\n"
           "                      Muse gives the model a delimited block with the size, dominant\n"
           "                      colours and the OCR text (Tesseract), marked as data\n"
           "  --data FILE         a table: CSV, TSV, JSON (array of objects or object of arrays) or JSON\n"
           "                      Lines (repeatable, at most " +
           num(k_limit_tables.max) +
           "). It loads into an in-memory SQLite\n"
           "                      database; its summary (schema, rows, column stats, sample rows) joins\n"
           "                      the prompt as data, and agents query it with the read-only query_table\n"
           "                      tool (one SELECT per call)\n"
           "\n"
           "generation:\n"
           "  --model FILE        GGUF model to load\n"
           "  --mmproj FILE       vision projector: --image then goes to the model as a picture\n"
           "  --rpc HOST:PORT,... spread the model's layers over ggml rpc-servers (trusted networks only:\n"
           "                      RPC has no authentication or encryption)\n"
           "  --backend URL       the model an OpenAI-compatible server serves (llama-server, vLLM,\n"
           "                      another muse serve) instead of a local one; repeat it for several\n"
           "  --backend-key KEY   its key; --backend-model NAME: the model to ask for\n"
           "  --system TEXT       system prompt\n"
           "  --max-tokens N      answer tokens after reasoning (" +
           L(k_limit_max_tokens) +
           "; -1: the most)\n"
           "  --temp T            sampling temperature, 0 = greedy (" +
           L(k_limit_temperature) +
           ")\n"
           "  --top-k N           " +
           L(k_limit_top_k) +
           "; 0 = the whole vocabulary\n"
           "  --top-p P           " +
           L(k_limit_top_p) +
           "; 1 = off\n"
           "  --min-p P           " +
           L(k_limit_min_p) +
           "; 0 = off\n"
           "  --repeat-penalty R  " +
           L(k_limit_repeat_penalty) +
           "; 1 = off\n"
           "  --frequency-penalty F, --presence-penalty P   OpenAI's, " +
           L(k_limit_frequency_penalty) +
           " = off;\n"
           "                      all three penalties look at the last 64 tokens\n"
           "  --seed N            sampling seed, " +
           range(k_limit_seed) +
           " (default -1: random)\n"
           "  --stop TEXT         stop the answer at TEXT, " +
           range(k_limit_stop_bytes) + " bytes (repeatable, at most " + num(k_limit_stop.max) +
           ")\n"
           "  --json-schema JSON  constrain the answer to this JSON schema (implies --mode instant)\n"
           "  --threads N         CPU threads (default: all)\n"
           "  --ctx N             KV cache size in tokens shared by all agents (default: enough for\n"
           "                      the mode, at least 4096)\n"
           "  --draft N           tokens each sequence may draft per step from its own text (prompt\n"
           "                      lookup; the output is unchanged, repeats take fewer steps), 0..16\n"
           "                      (default 4, 0 = off)\n"
           "\n"
           "output:\n"
           "  --json              print one JSON object (answer, mode, plan, agents, vote, usage)\n"
           "  --hide-reasoning    do not print reasoning\n"
           "  --verbose           show llama.cpp's own log\n"
           "\n" + std::string(safety_help()) +
           "\nCtrl-C stops generation cleanly and prints what was produced.\n";
}

std::string parse_ask_flags(int argc, char ** argv, int first, ask_flags & out, bool prompt_required) {
    out = ask_flags{};
    args          a(argc, argv, first);
    ask_options & opt = out.opt;
    std::string   reasoning, mode_name, value;
    double        v = 0;

    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            out.help = true;
            return "";
        }
        if (a.value("--model", out.model_path) || a.value("-m", out.model_path)) continue;
        if (a.value("--mmproj", out.mmproj)) continue;
        if (std::string rpc; a.value("--rpc", rpc)) {
            if (a.error.empty()) {
                if (error e = parse_rpc_list(rpc, out.rpc_servers)) a.error = "--rpc: " + e.message;
            }
            continue;
        }
        if (std::string u; a.value("--backend", u)) {
            if (a.error.empty()) {
                remote_params rp = out.remote;
                rp.url           = u;
                if (std::string bad = validate(rp); !bad.empty()) a.error = "--backend " + u + ": " + bad;
            }
            out.backend_urls.push_back(u);
            continue;
        }
        if (a.value("--backend-key", out.remote.api_key)) continue;
        if (a.value("--backend-model", out.remote.model)) continue;
        if (a.value("--system", out.system_prompt)) continue;
        if (a.value("--mode", mode_name)) continue;
        if (a.value("--reasoning", reasoning)) continue;
        if (a.value("--json-schema", opt.json_schema)) continue;
        if (a.value("--stop", value)) {
            if (!a.error.empty()) continue;
            opt.stop.push_back(value);
            if (!k_limit_stop_bytes.contains((double) value.size())) {
                a.error = "--stop must be " + range(k_limit_stop_bytes) + " bytes, got " + std::to_string(value.size());
            } else {
                a.error = count_problem(k_limit_stop, opt.stop.size());
            }
            continue;
        }
        if (a.limit_value(k_limit_agents, v)) { opt.agents = (int32_t) v; continue; }
        if (a.limit_value(k_limit_thinking_budget, v)) { opt.budget = (int32_t) v; continue; }
        if (a.limit_value(k_limit_planner_budget, v)) { opt.plan_tokens = (int32_t) v; continue; }
        if (a.limit_value(k_limit_max_plan_tasks, v)) { opt.max_plan_tasks = (int32_t) v; continue; }
        if (a.limit_value(k_limit_max_tool_steps, v)) { opt.max_tool_steps = (int32_t) v; continue; }
        if (a.limit_value(k_limit_prune_threshold, v)) { opt.prune_threshold = (float) v; continue; }
        if (a.flag("--no-planner")) { opt.planner = false; continue; }
        if (a.flag("--no-prune")) { opt.prune = false; continue; }
        if (a.flag("--refine")) { opt.refine = true; continue; }
        if (a.flag("--verify")) { opt.verify = true; continue; }
        if (a.value("--vote", value)) {
            if (a.error.empty() && !parse_vote_rule(value, opt.vote)) {
                a.error = "--vote must be weighted or majority, got '" + value + "'";
            }
            continue;
        }
        if (a.flag("--router-model")) { opt.router_model = true; continue; }
        if (a.flag("--no-tools")) { opt.tools.clear(); continue; }
        if (a.value("--data", value)) {
            if (!a.error.empty()) continue;
            out.data_files.push_back(value);
            a.error = count_problem(k_limit_tables, out.data_files.size());
            continue;
        }
        if (a.value("--image", value)) {
            if (!a.error.empty()) continue;
            out.image_files.push_back(value);
            a.error = count_problem(k_limit_images, out.image_files.size());
            continue;
        }
        if (a.flag("--show-agents")) { out.show_agents = true; continue; }
        if (a.limit_value(k_limit_max_tokens, v) || a.limit_value(k_limit_max_tokens, v, "-n")) {
            opt.answer_tokens = v < 0 ? (int32_t) k_limit_max_tokens.max : (int32_t) v;  // -1: the most
            continue;
        }
        if (a.limit_value(k_limit_temperature, v)) { opt.sampling.temperature = (float) v; continue; }
        if (a.limit_value(k_limit_top_k, v)) { opt.sampling.top_k = (int32_t) v; continue; }
        if (a.limit_value(k_limit_top_p, v)) { opt.sampling.top_p = (float) v; continue; }
        if (a.limit_value(k_limit_min_p, v)) { opt.sampling.min_p = (float) v; continue; }
        if (a.limit_value(k_limit_repeat_penalty, v)) { opt.sampling.repeat_penalty = (float) v; continue; }
        if (a.limit_value(k_limit_frequency_penalty, v)) { opt.sampling.frequency_penalty = (float) v; continue; }
        if (a.limit_value(k_limit_presence_penalty, v)) { opt.sampling.presence_penalty = (float) v; continue; }
        if (a.limit_value(k_limit_seed, v)) { opt.sampling.seed = v < 0 ? 0xFFFFFFFFu : (uint32_t) v; continue; }
        if (a.int_value("--threads", 0, 1024, out.threads) || a.int_value("-t", 0, 1024, out.threads)) continue;
        if (a.int_value("--ctx", 16, 1 << 22, out.ctx) || a.int_value("-c", 16, 1 << 22, out.ctx)) continue;
        if (a.int_value("--draft", 0, 16, out.draft)) continue;
        if (a.flag("--json")) { out.as_json = true; continue; }
        if (a.flag("--hide-reasoning")) { out.hide_reasoning = true; continue; }
        if (a.flag("--verbose") || a.flag("-v")) { out.verbose = 2; continue; }
        if (parse_safety_flag(a, out.safety)) continue;
        if (a.peek().rfind("-", 0) == 0 && a.peek() != "-") {
            return "unknown option " + a.peek() + " (see muse ask --help)";
        }
        if (!out.prompt.empty()) {
            return "only one PROMPT may be given; quote it";
        }
        out.prompt = a.take();
    }
    if (!a.error.empty()) {
        return a.error;
    }
    if (out.prompt.empty() && prompt_required) {
        return "missing PROMPT (usage: muse ask \"your question\")";
    }
    if (!mode_name.empty() && !parse_ask_mode(mode_name, opt.mode)) {
        return "--mode must be " + mode_name_list(all_modes()) + ", got '" + mode_name + "'";
    }
    if (!reasoning.empty()) {
        if (!mode_name.empty()) return "--reasoning and --mode cannot be combined; use --mode";
        if (reasoning == "on") opt.mode = MODE_THINKING;
        else if (reasoning == "off") opt.mode = MODE_INSTANT;
        else if (reasoning != "auto") return "--reasoning must be on, off or auto, got '" + reasoning + "'";
    }
    // The rules every front end shares (app/assistant.h): the API applies the same.
    ask_request probe;
    probe.opt = opt;
    if (error e = check_ask_rules(probe, 1, 1)) {
        return e.message;
    }
    opt = probe.opt;  // normalised: a JSON schema without thinking means instant
    return "";
}

}  // namespace muse::cli
