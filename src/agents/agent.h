#pragma once
// One agent: a chat sequence on the backend, with its tool loop and early pruning. An agent
// knows nothing of modes: the reasoning layer describes each of its agents as an agent_spec
// (an opaque role label, the chat request, the tools it may run) and reads the agent_trace back.
//
//   muse::cancel_source stop;
//   muse::agent_env env{ backend, tools };
//   env.cancel   = stop.get_token();                       // cancels the live stream at once
//   env.on_event = [](const muse::agent_event & ev) { /* deltas, tool calls */ };
//   muse::agent_spec spec;
//   spec.role    = "solver";
//   spec.request.messages = { { "user", "What is 17 * 23?" } };
//   spec.allowed_tools    = { "calculator" };
//   spec.max_tool_steps   = 4;
//   muse::agent_trace t = muse::run_agent(env, spec);      // t.answer, t.tool_calls, t.tokens...
//
// Thread safety: run_agent may run on many threads at once with the same env (one request's
// agents in parallel) as long as env.on_event is safe to call from them; the backend and the
// tool registry are.

#include "agents/tools.h"
#include "backend/backend.h"
#include "core/cancel.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace muse {

struct tool_call_trace {
    std::string name, arguments, result;
    bool        ok = false;
};

// What an agent did: its text, its tool calls, its tokens, how it ended.
struct agent_trace {
    std::string                  role;  // the spec's label (a solver's directive, a specialist role id...)
    std::string                  reasoning;
    std::string                  answer;
    std::vector<tool_call_trace> tool_calls;
    int32_t                      tokens                  = 0;  // generated, all steps
    int32_t                      prompt_tokens_prefilled = 0;
    int32_t                      prompt_tokens_reused    = 0;
    bool                         pruned                  = false;
    int32_t                      tokens_saved            = 0;  // reasoning budget left unspent when pruned
    double                       confidence              = 0;  // mean token log-probability (0 when not measured)
    // The log-probability of the agent's least likely stretch of prune_window tokens (its
    // weakest step: where a slip shows), confidence_window::weakest; 0 when not measured.
    double                       weakest_logprob         = 0;
    int32_t                      scored_tokens           = 0;  // tokens with a log-probability
    float                        temperature             = 0;
    uint32_t                     seed                    = 0;
    finish_reason                finish                  = FINISH_NONE;
    error                        err;
    double                       start_ms = 0, end_ms = 0;  // on the request's clock (agent_env::t0)
    std::vector<chat_tool_call>  client_calls;              // calls of client tools the agent stopped at
};

// What an agent streams while it runs.
struct agent_event {
    enum type_t {
        DELTA,  // delta (REASONING or CONTENT), text, tokens so far
        TOOL,   // text: "name(args) -> result"
    } type                   = DELTA;
    chat_event::type_t delta = chat_event::CONTENT;
    std::string        text;
    int32_t            tokens = 0;
};

// What the agents of one request share.
struct agent_env {
    agent_env(backend & b, const tool_registry & t) : be(b), tools(t) {}

    backend &                                be;
    const tool_registry &                    tools;
    cancel_token                             cancel;    // cancels the agent's live stream through a callback
    std::function<void(const agent_event &)> on_event;  // may be empty
    std::chrono::steady_clock::time_point    t0 = std::chrono::steady_clock::now();  // the request's clock
    std::string                              cache_salt;  // the prompt cache's sharing scope (chat_request::cache_salt)

    double now_ms() const;
};

struct agent_spec {
    std::string              role;           // an opaque label, copied to the trace
    chat_request             request;        // messages, reasoning, budget, sampling, tools to show, fork_from
                                             // (max_tokens and the budget are the agent's, all its steps together)
    std::vector<std::string> allowed_tools;  // tools this agent may run (others get an error result)
    int32_t                  max_tool_steps = 0;
    bool                     client_tools   = false;  // tool calls are the caller's: stop at them, do not run them
    // Early pruning: stop when the mean token log-probability over the last prune_window
    // reasoning tokens falls below prune_threshold (nats).
    bool    prune           = false;
    float   prune_threshold = -5.0f;
    int32_t prune_window    = 32;
    // Tool calls the model gives no id get "<call_id_prefix>_<step>_<i>".
    std::string call_id_prefix = "call";
};

// Runs the agent to its end (tool steps included). Never throws: an exception inside (out of
// memory, a bug) comes back as an ERROR_INTERNAL in the trace. Cancelled (env.cancel), it ends
// at the next engine step with FINISH_CANCELLED.
agent_trace run_agent(const agent_env & env, const agent_spec & spec);

// A prompt prefilled once and kept for forks (max_tokens 0, retained). submit_prefix returns
// at once, so that forks of the prefix can be submitted while it is prefilled (the backend holds
// them and forks them together, in one step, when it is done); await_prefix waits for it.
// Destroying the stream releases the cells.
std::unique_ptr<chat_stream> submit_prefix(const agent_env & env, chat_request req);
chat_result                  await_prefix(chat_stream & s);

// Mean of the last `window` values, or 0 when fewer were seen.
class confidence_window {
  public:
    explicit confidence_window(int32_t window) : w(window) {}
    void   add(float lp);
    bool   full() const { return (int32_t)vals.size() >= w; }
    double mean() const;
    double mean_all() const { return n_all > 0 ? sum_all / n_all : 0.0; }
    // The summed log-probability of the least likely `window` consecutive values seen (a
    // shorter run: its mean times `window`, so runs of any length compare); 0 when none.
    double weakest() const;
    int64_t count() const { return n_all; }

  private:
    int32_t            w;
    std::vector<float> vals;  // ring buffer
    size_t             next    = 0;
    double             sum     = 0;
    double             sum_all = 0;
    int64_t            n_all   = 0;
    double             min_sum  = 0;  // over full windows
    bool               any_full = false;

    void note_full();
};

}  // namespace muse
