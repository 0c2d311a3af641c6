#pragma once
// What every step of one request shares: the request, the backend, the tools, the cancel
// token, the live view (sink) and the result being built. Internal to the reasoning layer:
// modes and their steps read and write it; the orchestrator creates one per request.
//
//   ask_context ctx(backend, tools, req, sink, cancel);
//   agent_call  c;                       // an agent_spec plus the part it plays
//   c.kind = AGENT_ANSWER; c.role = "instant"; c.request = base_request(ctx, REASONING_OFF, "low");
//   int idx = ctx.run_agent(c);          // ctx.result.agents[idx] is its trace
//
// Thread safety: one context is shared by every step of a request; result is guarded by mu,
// emit() serialises the sink, run_agent() and add_agent() may be called from any step thread.

#include "reasoning/orchestrator.h"

#include <chrono>
#include <memory>
#include <mutex>

namespace muse {

// An agent as a mode describes it: what it runs (agents/agent.h) and the part it plays.
struct agent_call : agent_spec {
    agent_kind  kind = AGENT_ANSWER;
    std::string task_id;
    int         index = -1;  // a slot reserved with ask_context::add_agent (keeps parallel agents in order)
};

class ask_context {
  public:
    ask_context(backend & b, const tool_registry & t, const ask_request & r, const ask_sink & s,
                const cancel_token & c);

    backend &             be;
    const tool_registry & reg;
    const ask_request &   req;
    const ask_options &   opt;
    cancel_token          cancel;
    agent_env             env;  // what the request's agents share (backend, tools, cancel, clock, salt)
    const bool            show_tools;  // the model's template can call tools (backend_caps::tools)

    std::mutex mu;
    ask_result result;  // agents are appended under mu

    double now_ms() const { return env.now_ms(); }
    bool   cancelled() const { return cancel.stop_requested(); }
    void   emit(const ask_event & ev);
    // Reserves an agent slot in result.agents and announces it (AGENT_START).
    int add_agent(agent_kind kind, const std::string & role, const std::string & task_id);
    // Runs the agent (in its slot, or a new one), streams its events as ask_events, stores its
    // trace and announces its end (AGENT_END). Returns its index in result.agents.
    int run_agent(const agent_call & c);
    // A copy of an agent's trace, taken under mu.
    ask_agent_trace trace(int index);

  private:
    std::mutex emit_mu;
    ask_sink   user_sink;
};

// A prompt prefilled once for forks (agents/agent.h's submit_prefix); await_prefix adds its
// prefill to the request's shared usage.
std::unique_ptr<chat_stream> submit_prefix(ask_context & ctx, chat_request req);
void                         await_prefix(ask_context & ctx, chat_stream & s, int32_t & prompt_tokens, error & err);
std::unique_ptr<chat_stream> start_prefix(ask_context & ctx, chat_request req, int32_t & prompt_tokens, error & err);

}  // namespace muse
