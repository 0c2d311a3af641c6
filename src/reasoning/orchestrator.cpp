#include "orchestrator.h"

#include "modes.h"

#include <cmath>
#include <random>

namespace muse {

const char * agent_kind_name(agent_kind k) {
    switch (k) {
        case AGENT_ANSWER:      return "answer";
        case AGENT_PLANNER:     return "planner";
        case AGENT_SUBTASK:     return "subtask";
        case AGENT_SOLVER:      return "solver";
        case AGENT_SYNTHESIZER: return "synthesizer";
        case AGENT_REFINER:     return "refiner";
        case AGENT_VERIFIER:    return "verifier";
        case AGENT_ROUTER:      return "router";
    }
    return "?";
}

std::string validate(const ask_options & o) {
    auto range = [](const char * name, double v, double lo, double hi) -> std::string {
        if (!(v >= lo && v <= hi)) {
            char buf[160];
            snprintf(buf, sizeof(buf), "%s must be in [%g, %g], got %g", name, lo, hi, v);
            return buf;
        }
        return "";
    };
    for (const std::string & e : {
             limit_problem(k_limit_agents, o.agents),
             limit_problem(k_limit_thinking_budget, o.budget),
             limit_problem(k_limit_max_tokens, o.answer_tokens, "max_tokens", false),
             limit_problem(k_limit_max_plan_tasks, o.max_plan_tasks),
             limit_problem(k_limit_planner_budget, o.plan_tokens),
             limit_problem(k_limit_prune_threshold, o.prune_threshold),
             range("prune_window", o.prune_window, 4, 4096),
             limit_problem(k_limit_max_tool_steps, o.max_tool_steps),
             validate(o.sampling),
         }) {
        if (!e.empty()) {
            return e;
        }
    }
    // The request's own stop strings, before any chat template adds its own.
    if (o.stop.size() > (size_t) k_limit_stop.max) {
        return "stop: at most " + std::to_string((int) k_limit_stop.max) + " stop strings, got " + std::to_string(o.stop.size());
    }
    for (const auto & s : o.stop) {
        if (!k_limit_stop_bytes.contains((double) s.size())) {
            return "stop: each stop string must be " + std::to_string((int) k_limit_stop_bytes.min) + "-" +
                   std::to_string((int) k_limit_stop_bytes.max) + " bytes, got " + std::to_string(s.size());
        }
    }
    if (o.client_tool_choice != "auto" && o.client_tool_choice != "none" && o.client_tool_choice != "required") {
        return "tool_choice must be auto, none or required, got '" + o.client_tool_choice + "'";
    }
    if (!o.client_tools.empty() && !find_mode(o.mode).traits().allows_client_tools) {
        return std::string("tools: client tools are answered by one agent; use mode ") +
               mode_name_list(modes_where([](const mode_traits & t) { return t.allows_client_tools; })) + ", not " +
               ask_mode_name(o.mode);
    }
    return "";
}

std::string request_text(const std::vector<chat_message> & messages) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
        if (it->role == "user") {
            return it->content;
        }
    }
    return "";
}

std::vector<chat_message> with_suffix(const std::vector<chat_message> & messages, const std::string & suffix) {
    std::vector<chat_message> out = messages;
    if (suffix.empty()) {
        return out;
    }
    if (out.empty() || out.back().role != "user") {
        chat_message m;
        m.role    = "user";
        m.content = suffix;
        out.push_back(std::move(m));
    } else {
        out.back().content += "\n\n" + suffix;
    }
    return out;
}

chat_request base_request(const ask_context & ctx, reasoning_mode reasoning, const char * strength) {
    chat_request r;
    r.messages             = ctx.req.messages;
    // A model whose template cannot call tools is not shown Muse's own (assistant::check refuses
    // client tools for it).
    r.tools = !ctx.opt.client_tools.empty() ? ctx.opt.client_tools
              : ctx.show_tools              ? ctx.reg.specs(ctx.opt.tools)
                                            : std::vector<chat_tool>{};
    r.tool_choice          = ctx.opt.client_tools.empty() ? "auto" : ctx.opt.client_tool_choice;
    r.reasoning            = reasoning;
    r.reasoning_strength   = strength;
    r.sampling             = ctx.opt.sampling;
    r.cache_salt           = ctx.req.cache_salt;
    return r;
}

void announce_mode(ask_context & ctx, ask_mode m) {
    ask_event ev;
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        if (!ctx.opt.client_tools.empty() && !find_mode(m).traits().allows_client_tools) {
            for (const mode * x : all_modes()) {
                const mode_traits t = x->traits();
                if (!t.routes && t.reasons && t.allows_client_tools) {
                    m = x->id();
                    ctx.result.mode_reason += std::string("; client tools are answered by one agent, so ") + x->name();
                    break;
                }
            }
        }
        ctx.result.mode = m;
        ev.type         = ask_event::MODE;
        ev.text         = ask_mode_name(m);
        ev.detail       = ctx.result.mode_reason;
    }
    ctx.emit(ev);
}

namespace {

// The backend as one request sees it: every stream it starts carries the request's cache
// salt, whichever agent built the chat_request, so no step can reuse another scope's cells;
// and on a backend that cannot fork, the prefix hints (fork_from, retain) are dropped: every
// request carries its whole conversation anyway, so it runs, only without sharing.
class salted_backend : public backend {
  public:
    salted_backend(backend & b, const std::string & s) : inner(b), salt(s), fork(b.caps().fork) {}

    std::unique_ptr<chat_stream> start(const chat_request & req) override {
        if (req.cache_salt == salt && (fork || (req.fork_from == 0 && !req.retain))) {
            return inner.start(req);
        }
        chat_request r = req;
        r.cache_salt   = salt;
        if (!fork) {
            r.fork_from = 0;
            r.retain    = false;
        }
        return inner.start(r);
    }
    backend_caps caps() const override { return inner.caps(); }
    std::vector<backend_metric> stats() const override { return inner.stats(); }

  private:
    backend &           inner;
    const std::string & salt;
    const bool          fork;
};

}  // namespace

orchestrator::orchestrator(backend & b, tool_registry tools) : be(b), reg(std::move(tools)) {}

ask_result orchestrator::run(const ask_request & req0, const ask_sink & sink, const cancel_token & cancel) {
    ask_request req = req0;
    if (req.opt.sampling.seed == 0xFFFFFFFF) {
        req.opt.sampling.seed = std::random_device{}() & 0x7FFFFFFF;  // agents derive theirs from it, reproducibly
    }
    salted_backend salted(be, req.cache_salt);
    ask_context    ctx(salted, reg, req, sink, cancel);
    ctx.result.mode_requested = req.opt.mode;

    auto fail = [&](error_code code, std::string msg) {
        ctx.result.err    = { code, std::move(msg) };
        ctx.result.finish = FINISH_ERROR;
        return ctx.result;
    };
    if (std::string e = validate(req.opt); !e.empty()) {
        return fail(ERROR_INVALID_ARGUMENT, e);
    }
    if (request_text(req.messages).empty()) {
        return fail(ERROR_INVALID_ARGUMENT, "messages: the conversation needs a user message with text");
    }
    for (const auto & name : req.opt.tools) {
        if (!reg.find(name)) {
            return fail(ERROR_INVALID_ARGUMENT, "tools: unknown tool '" + name + "'");
        }
    }

    // The mode builds the request's step graph (auto: a route that adds the chosen mode's
    // steps); one executor runs it.
    step_graph g;
    if (req.opt.mode == MODE_AUTO) {
        find_mode(MODE_AUTO).build(ctx, g, -1);
    } else {
        ctx.result.mode_reason = std::string("requested: ") + ask_mode_name(req.opt.mode);
        announce_mode(ctx, req.opt.mode);
        find_mode(ctx.result.mode).build(ctx, g, -1);
    }
    std::vector<step_timing> timings;
    g.execute(cancel, ctx.env.t0, timings);
    ctx.result.timings = std::move(timings);
    if (std::string what = g.failure(); !what.empty() && !ctx.result.err) {
        ctx.result.err    = { ERROR_INTERNAL, "internal error: " + what };
        ctx.result.finish = FINISH_ERROR;
    }

    ask_result & res = ctx.result;
    for (const auto & t : res.agents) {
        res.use.prompt_tokens_prefilled += t.prompt_tokens_prefilled;
        res.use.prompt_tokens_reused += t.prompt_tokens_reused;
        res.use.completion_tokens += t.tokens;
        res.use.planner_tokens += t.kind == AGENT_PLANNER ? t.tokens : 0;
        res.use.tokens_saved_by_pruning += t.tokens_saved;
    }
    if (ctx.cancelled() && !res.err) {
        res.finish = FINISH_CANCELLED;
    }
    res.total_ms = ctx.now_ms();
    return std::move(ctx.result);
}

}  // namespace muse
