#pragma once
// One agent step: a chat sequence on the backend, with its tool loop and early pruning.
// The orchestrator's modes describe agents as agent_spec and run them here, one thread each
// when they run in parallel.
//
// Thread safety: an ask_context is shared by every agent of one request; its members that
// change are guarded by its mutex.

#include "reasoning/orchestrator.h"

#include <chrono>
#include <condition_variable>

namespace muse {

// What all agents of one request share.
struct ask_context {
    ask_context(backend & b, const tool_registry & t, const ask_request & r, const ask_sink & s,
                const std::atomic<bool> & global_cancel);

    backend &               be;
    const tool_registry &   reg;
    const ask_request &     req;
    const ask_options &     opt;
    ask_sink                sink;  // already serialised
    const std::atomic<bool> & global_cancel;
    std::chrono::steady_clock::time_point t0;

    std::mutex mu;
    ask_result result;  // agents are appended under mu

    double now_ms() const;
    bool   cancelled() const { return global_cancel.load(); }
    void   emit(const ask_event & ev);
    // Reserves an agent slot in result.agents and announces it.
    int    add_agent(agent_kind kind, const std::string & role, const std::string & task_id);
    void   begin_step(const std::string & name);
    void   end_step(const std::string & name);

    // Streams started by this request, so that cancel() can reach them.
    void register_stream(chat_stream * s);
    void unregister_stream(chat_stream * s);
    void cancel_streams();

  private:
    std::mutex                 streams_mu;
    std::vector<chat_stream *> live;
    std::mutex                 emit_mu;
    ask_sink                   user_sink;
};

struct agent_spec {
    agent_kind  kind = AGENT_ANSWER;
    std::string role;
    std::string task_id;
    chat_request request;  // messages, reasoning, budget, sampling, tools to show, fork_from
    std::vector<std::string> allowed_tools;  // tools this agent may run (others get an error result)
    int32_t     max_tool_steps = 0;
    bool        prune = false;  // judge this agent's confidence and stop it when too low
    bool        client_tools = false;  // tool calls are the caller's: stop at them, do not run them
    int         index = -1;     // a slot reserved with ask_context::add_agent (keeps parallel agents in order)
};

// Runs the agent to its end (tool steps included) and returns its trace index in
// ctx.result.agents. The trace is complete when this returns.
int run_agent(ask_context & ctx, const agent_spec & spec);

// Prefills a prompt once and keeps its cache for forks (max_tokens 0, retained). Returns the
// live stream (destroying it releases the cells) and adds its prefill to the shared usage.
std::unique_ptr<chat_stream> start_prefix(ask_context & ctx, chat_request req, int32_t & prompt_tokens, error & err);

// start_prefix in two halves: submit_prefix returns at once, so that forks of the prefix can
// be submitted while it is prefilled (the backend holds them and forks them together, in one
// step, when it is done); await_prefix waits for it and adds its prefill to the shared usage.
std::unique_ptr<chat_stream> submit_prefix(ask_context & ctx, chat_request req);
void await_prefix(ask_context & ctx, chat_stream & s, int32_t & prompt_tokens, error & err);

// Mean of the last `window` values, or 0 when fewer were seen.
class confidence_window {
  public:
    explicit confidence_window(int32_t window) : w(window) {}
    void   add(float lp);
    bool   full() const { return (int32_t) vals.size() >= w; }
    double mean() const;
    double mean_all() const { return n_all > 0 ? sum_all / n_all : 0.0; }

  private:
    int32_t            w;
    std::vector<float> vals;  // ring buffer
    size_t             next  = 0;
    double             sum   = 0;
    double             sum_all = 0;
    int64_t            n_all   = 0;
};

}  // namespace muse
