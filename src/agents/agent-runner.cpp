#include "agent-runner.h"

#include "core/random.h"

#include <algorithm>
#include <cstdio>

namespace muse {

ask_context::ask_context(backend & b, const tool_registry & t, const ask_request & r, const ask_sink & s,
                         const std::atomic<bool> & gc) :
    be(b),
    reg(t),
    req(r),
    opt(r.opt),
    global_cancel(gc),
    t0(std::chrono::steady_clock::now()),
    user_sink(s) {}

double ask_context::now_ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void ask_context::emit(const ask_event & ev) {
    if (!user_sink) {
        return;
    }
    std::lock_guard<std::mutex> lk(emit_mu);
    user_sink(ev);
}

int ask_context::add_agent(agent_kind kind, const std::string & role, const std::string & task_id) {
    int idx;
    {
        std::lock_guard<std::mutex> lk(mu);
        agent_trace t;
        idx        = (int) result.agents.size();
        t.index    = idx;
        t.kind     = kind;
        t.role     = role;
        t.task_id  = task_id;
        t.start_ms = now_ms();
        result.agents.push_back(std::move(t));
    }
    ask_event ev;
    ev.type  = ask_event::AGENT_START;
    ev.agent = idx;
    ev.kind  = kind;
    ev.role  = role;
    ev.text  = task_id;
    emit(ev);
    return idx;
}

void ask_context::begin_step(const std::string & name) {
    std::lock_guard<std::mutex> lk(mu);
    result.timings.push_back({ name, now_ms(), 0 });
}

void ask_context::end_step(const std::string & name) {
    std::lock_guard<std::mutex> lk(mu);
    for (auto & t : result.timings) {
        if (t.step == name && t.end_ms == 0) {
            t.end_ms = now_ms();
            return;
        }
    }
}

void ask_context::register_stream(chat_stream * s) {
    std::lock_guard<std::mutex> lk(streams_mu);
    live.push_back(s);
    if (cancelled()) {
        s->cancel();
    }
}

void ask_context::unregister_stream(chat_stream * s) {
    std::lock_guard<std::mutex> lk(streams_mu);
    live.erase(std::remove(live.begin(), live.end(), s), live.end());
}

void ask_context::cancel_streams() {
    std::lock_guard<std::mutex> lk(streams_mu);
    for (auto * s : live) {
        s->cancel();
    }
}

void confidence_window::add(float lp) {
    sum_all += lp;
    n_all++;
    if ((int32_t) vals.size() < w) {
        vals.push_back(lp);
        sum += lp;
        return;
    }
    sum += lp - vals[next];
    vals[next] = lp;
    next       = (next + 1) % vals.size();
}

double confidence_window::mean() const {
    return vals.empty() ? 0.0 : sum / (double) vals.size();
}

namespace {

// Keeps a stream registered for cancellation for as long as it lives.
struct live_stream {
    ask_context &                ctx;
    std::unique_ptr<chat_stream> s;
    live_stream(ask_context & c, std::unique_ptr<chat_stream> st) : ctx(c), s(std::move(st)) { ctx.register_stream(s.get()); }
    ~live_stream() {
        if (s) {
            ctx.unregister_stream(s.get());
        }
    }
    live_stream(const live_stream &)             = delete;
    live_stream & operator=(const live_stream &) = delete;
};

bool contains(const std::vector<std::string> & v, const std::string & x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

static int run_agent_steps(ask_context & ctx, const agent_spec & spec, int idx);

// Agents run on their own threads: an exception (out of memory, a bug) fails this agent with
// an error the caller sees, instead of terminating the process.
int run_agent(ask_context & ctx, const agent_spec & spec) {
    const int idx = spec.index >= 0 ? spec.index : ctx.add_agent(spec.kind, spec.role, spec.task_id);
    std::string what;
    try {
        return run_agent_steps(ctx, spec, idx);
    } catch (const std::exception & e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    fprintf(stderr, "muse: agent %d failed: %s\n", idx, what.c_str());
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        agent_trace & t = ctx.result.agents[idx];
        t.err    = { ERROR_INTERNAL, "internal error: " + what };
        t.end_ms = ctx.now_ms();
    }
    ask_event ev;
    ev.type   = ask_event::AGENT_END;
    ev.agent  = idx;
    ev.kind   = spec.kind;
    ev.detail = "failed: internal error: " + what;
    try {
        ctx.emit(ev);
    } catch (...) {
    }
    return idx;
}

static int run_agent_steps(ask_context & ctx, const agent_spec & spec, int idx) {

    chat_request rq = spec.request;
    rq.retain       = true;  // a tool step's continuation forks this step's cache
    rq.logprobs     = rq.logprobs || spec.prune;
    const int32_t budget = rq.reasoning_budget;

    agent_trace t;
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        t = ctx.result.agents[idx];
    }
    t.temperature = rq.sampling.temperature;
    t.seed        = rq.sampling.seed;

    confidence_window           win(ctx.opt.prune_window);
    int32_t                     n_reason_tokens = 0;
    int32_t                     tool_steps      = 0;
    std::unique_ptr<live_stream> prev;  // the previous step, kept until its continuation has forked it

    for (;;) {
        if (ctx.cancelled()) {
            t.finish = FINISH_CANCELLED;
            break;
        }
        auto        cur = std::make_unique<live_stream>(ctx, ctx.be.start(rq));
        chat_result r;
        chat_event  ev;
        bool        pruned = false;
        while (cur->s->next(ev)) {
            prev.reset();  // the continuation is admitted: its fork has been resolved
            r.add(ev);
            const bool reasoning = ev.type == chat_event::REASONING;
            for (float lp : ev.logprobs) {
                win.add(lp);
                n_reason_tokens += reasoning ? 1 : 0;
            }
            if (spec.prune && reasoning && !pruned && win.full() && win.mean() < ctx.opt.prune_threshold) {
                pruned = true;
                cur->s->cancel();
            }
            if (ev.type == chat_event::REASONING || ev.type == chat_event::CONTENT) {
                ask_event ae;
                ae.type   = ask_event::AGENT_DELTA;
                ae.agent  = idx;
                ae.kind   = spec.kind;
                ae.delta  = ev.type;
                ae.text   = ev.text;
                ae.tokens = t.tokens + (int32_t) r.logprobs.size();
                ctx.emit(ae);
            }
        }
        prev.reset();
        t.tokens += r.use.completion_tokens;
        t.prompt_tokens_prefilled += r.use.prompt_tokens_prefilled;
        t.prompt_tokens_reused += r.use.prompt_tokens_reused;
        t.reasoning += r.reasoning;
        t.answer = r.content;
        t.finish = r.finish;
        if (pruned) {
            t.pruned       = true;
            t.finish       = FINISH_CANCELLED;
            t.tokens_saved = budget >= 0 ? std::max(0, budget - n_reason_tokens) : 0;
            break;
        }
        if (r.err) {
            t.err = r.err;
            break;
        }
        if (r.tool_calls.empty() || r.finish != FINISH_STOP) {
            break;
        }
        if (spec.client_tools) {
            // The caller runs these: hand them over with ids it can answer to.
            for (size_t i = 0; i < r.tool_calls.size(); ++i) {
                chat_tool_call tc = r.tool_calls[i];
                if (tc.id.empty()) {
                    tc.id = "call_" + random_hex(16);
                }
                t.client_calls.push_back(std::move(tc));
            }
            t.finish = FINISH_TOOL_CALLS;
            break;
        }

        // A tool step: run the calls, show the results as delimited data, and continue in a
        // sequence that forks this one, so the conversation so far is not computed again.
        chat_message assistant;
        assistant.role              = "assistant";
        assistant.content           = r.content;
        assistant.reasoning_content = r.reasoning;
        assistant.tool_calls        = r.tool_calls;
        rq.messages.push_back(assistant);
        for (size_t i = 0; i < r.tool_calls.size(); ++i) {
            auto &      tc = r.tool_calls[i];
            if (tc.id.empty()) {
                tc.id = "call_" + std::to_string(idx) + "_" + std::to_string(tool_steps) + "_" + std::to_string(i);
                rq.messages.back().tool_calls[i].id = tc.id;
            }
            tool_output out;
            if (tool_steps >= spec.max_tool_steps) {
                out = { false, "tool step limit reached (" + std::to_string(spec.max_tool_steps) +
                                   "): answer with what you have" };
            } else if (!contains(spec.allowed_tools, tc.name)) {
                out = { false, "the tool '" + tc.name + "' is not available to this agent" };
            } else {
                out = ctx.reg.call(tc.name, tc.arguments);
            }
            t.tool_calls.push_back({ tc.name, tc.arguments, out.text, out.ok });
            ask_event ae;
            ae.type  = ask_event::AGENT_TOOL;
            ae.agent = idx;
            ae.kind  = spec.kind;
            ae.text  = tc.name + "(" + tc.arguments + ") -> " + out.text;
            ctx.emit(ae);
            chat_message tm;
            tm.role         = "tool";
            tm.name         = tc.name;
            tm.tool_call_id = tc.id;
            tm.content      = tool_result_block(tc.name, out);
            rq.messages.push_back(tm);
        }
        const bool over_limit = tool_steps >= spec.max_tool_steps;
        tool_steps++;
        if (over_limit) {
            rq.tool_choice = "none";  // the model answers now
        }
        if (budget >= 0) {
            rq.reasoning_budget = std::max(0, budget - t.tokens);
        }
        if (rq.max_tokens > 0) {
            rq.max_tokens = std::max(1, rq.max_tokens - r.use.completion_tokens);
        }
        rq.fork_from = cur->s->id();
        prev         = std::move(cur);
    }

    t.confidence = win.mean_all();
    t.end_ms     = ctx.now_ms();
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        ctx.result.agents[idx] = t;
    }
    ask_event ev;
    ev.type   = ask_event::AGENT_END;
    ev.agent  = idx;
    ev.kind   = spec.kind;
    ev.tokens = t.tokens;
    ev.detail = t.pruned ? "pruned" : t.err ? "failed: " + t.err.message : t.finish == FINISH_CANCELLED ? "cancelled" : "answered";
    ev.text   = t.answer;
    ctx.emit(ev);
    return idx;
}

std::unique_ptr<chat_stream> submit_prefix(ask_context & ctx, chat_request req) {
    req.max_tokens = 0;
    req.retain     = true;
    return ctx.be.start(req);
}

void await_prefix(ask_context & ctx, chat_stream & s, int32_t & prompt_tokens, error & err) {
    chat_result r = collect(s);
    prompt_tokens = r.use.prompt_tokens;
    err           = r.err;
    std::lock_guard<std::mutex> lk(ctx.mu);
    ctx.result.use.shared_prefix_tokens += r.use.prompt_tokens_prefilled;
    ctx.result.use.prompt_tokens_prefilled += r.use.prompt_tokens_prefilled;
    ctx.result.use.prompt_tokens_reused += r.use.prompt_tokens_reused;
}

std::unique_ptr<chat_stream> start_prefix(ask_context & ctx, chat_request req, int32_t & prompt_tokens, error & err) {
    auto s = submit_prefix(ctx, std::move(req));
    await_prefix(ctx, *s, prompt_tokens, err);
    return s;
}

}  // namespace muse
