#include "context.h"

namespace muse {

ask_context::ask_context(backend & b, const tool_registry & t, const ask_request & r, const ask_sink & s,
                         const cancel_token & c)
    : be(b), reg(t), req(r), opt(r.opt), cancel(c), env(b, t), show_tools(b.caps().tools), user_sink(s) {
    env.cancel     = c;
    env.cache_salt = r.cache_salt;
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
        ask_agent_trace             t;
        idx        = (int)result.agents.size();
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

ask_agent_trace ask_context::trace(int index) {
    std::lock_guard<std::mutex> lk(mu);
    return result.agents[index];
}

int ask_context::run_agent(const agent_call & c) {
    const int idx = c.index >= 0 ? c.index : add_agent(c.kind, c.role, c.task_id);

    agent_spec spec       = c;
    spec.prune_threshold  = opt.prune_threshold;
    spec.prune_window     = opt.prune_window;
    spec.call_id_prefix   = "call_" + std::to_string(idx);
    agent_env        e    = env;
    const agent_kind kind = c.kind;
    e.on_event            = [this, idx, kind](const agent_event & ev) {
        ask_event ae;
        ae.type   = ev.type == agent_event::TOOL ? ask_event::AGENT_TOOL : ask_event::AGENT_DELTA;
        ae.agent  = idx;
        ae.kind   = kind;
        ae.delta  = ev.delta;
        ae.text   = ev.text;
        ae.tokens = ev.tokens;
        emit(ae);
    };
    const agent_trace t = muse::run_agent(e, spec);
    {
        std::lock_guard<std::mutex> lk(mu);
        ask_agent_trace &           slot  = result.agents[idx];
        const double                start = slot.start_ms;  // the slot's: a reserved agent waits in it
        static_cast<agent_trace &>(slot)  = t;
        slot.start_ms                     = start;
    }
    ask_event ev;
    ev.type   = ask_event::AGENT_END;
    ev.agent  = idx;
    ev.kind   = kind;
    ev.tokens = t.tokens;
    ev.detail = t.pruned                       ? "pruned"
                : t.err                        ? "failed: " + t.err.message
                : t.finish == FINISH_CANCELLED ? "cancelled"
                                               : "answered";
    ev.text   = t.answer;
    try {
        emit(ev);
    } catch (...) {
        // a sink that throws at the end of an agent must not lose the agent's trace
    }
    return idx;
}

std::unique_ptr<chat_stream> submit_prefix(ask_context & ctx, chat_request req) {
    return submit_prefix(ctx.env, std::move(req));
}

void await_prefix(ask_context & ctx, chat_stream & s, int32_t & prompt_tokens, error & err) {
    const chat_result r = await_prefix(s);
    prompt_tokens       = r.use.prompt_tokens;
    err                 = r.err;
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
