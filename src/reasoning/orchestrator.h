#pragma once
// The orchestrator: Muse's reasoning modes as policies over one backend. Each mode builds a
// small graph of agent steps, and every step is a sequence on the backend, so parallel
// agents share one decode loop (and, through fork, one prefill of the shared prompt).
//
//   muse::orchestrator orch(backend, muse::builtin_tools());
//   muse::ask_request  req;
//   req.messages = { { "user", "What is 17 * 23?" } };
//   req.opt.mode = muse::MODE_CONTEMPLATING;
//   muse::cancel_source stop;  // stop.request_stop() from any thread cancels the request
//   muse::ask_result r = orch.run(req, [](const muse::ask_event & ev) { /* live view */ }, stop.get_token());
//
//   instant        reasoning off (Muse Glimmer: strength low, answer channel opened), one answer
//   thinking       one agent reasons within a budget (budget-forced), may call tools, answers
//   contemplating  planner (JSON plan) -> sub-tasks in parallel -> K solver agents forked from
//                  the shared prefix -> early pruning -> vote or synthesis [-> refinement]
//   auto           a cheap router picks one of the three, and says why
//
// Thread safety: run() may be called from several threads at once (each call is one
// request); the sink is called from agent threads, one call at a time per request.

#include "agents/agent.h"
#include "agents/plan.h"
#include "agents/tools.h"
#include "backend/backend.h"
#include "core/cancel.h"
#include "core/limits.h"
#include "reasoning/answer.h"
#include "reasoning/router.h"
#include "reasoning/step-graph.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

// The fields a user sets have their ranges and defaults in core/limits.h (k_limit_*).
struct ask_options {
    ask_mode mode   = MODE_AUTO;
    int32_t  agents = (int32_t) k_limit_agents.def;           // contemplating: K solver agents
    int32_t  budget = (int32_t) k_limit_thinking_budget.def;  // thinking tokens per reasoning agent
    int32_t  answer_tokens = (int32_t) k_limit_max_tokens.def;  // an agent's answer after reasoning (max_tokens)

    bool     planner        = true;  // contemplating: plan sub-tasks first
    int32_t  max_plan_tasks = (int32_t) k_limit_max_plan_tasks.def;
    // The planner's tokens, reasoning and plan, all of its steps together (planner_budget).
    int32_t  plan_tokens    = (int32_t) k_limit_planner_budget.def;

    // Early pruning of solver branches: a branch whose mean token log-probability over the
    // last `prune_window` reasoning tokens falls below `prune_threshold` stops. The default is
    // conservative: -5 nats means the average token had under 1% probability.
    bool    prune           = true;
    float   prune_threshold = (float) k_limit_prune_threshold.def;  // nats
    int32_t prune_window    = 32;     // tokens, 4..4096

    bool    refine = false;  // contemplating: one debate round where each agent may revise
    // contemplating: when the solvers disagree, a verifier (greedy, reasoning on) checks each of
    // the most-voted answers (up to 3); an answer found right beats those found wrong.
    bool    verify = false;
    // contemplating: how the solvers' answers count (answer.h): weighted by each agent's
    // weakest stretch of tokens (measured: +1 point over a plain count on Muse-Tiny), or one each
    vote_rule vote = VOTE_WEIGHTED;

    std::vector<std::string> tools = { "calculator", "current_datetime" };  // tools agents may call
    // Tools the caller runs itself (the OpenAI API's `tools`). When given, they replace the
    // registry's tools: an agent that calls one stops, and the result carries the calls
    // (ask_result::tool_calls, finish FINISH_TOOL_CALLS) for the caller to run and send back as
    // `tool` messages. One agent answers: contemplating is refused, auto picks at most thinking.
    std::vector<chat_tool> client_tools;
    std::string            client_tool_choice = "auto";  // auto, none or required
    int32_t max_tool_steps = (int32_t) k_limit_max_tool_steps.def;  // tool calls per agent

    // Sampling of every agent; solvers spread their temperatures around this one and derive
    // their seeds from this seed (random when 0xFFFFFFFF).
    sampling_params sampling = default_sampling();
    std::vector<std::string> stop;         // instant / thinking answers stop at these strings (the chat template's come on top)
    std::string json_schema;               // constrain the answer (instant / thinking; reasoning is then off)
    bool        router_model = false;      // auto: also ask the model for a one-word classification

    static sampling_params default_sampling() {
        sampling_params s;
        s.temperature       = (float) k_limit_temperature.def;
        s.top_k             = (int32_t) k_limit_top_k.def;
        s.top_p             = (float) k_limit_top_p.def;
        s.min_p             = (float) k_limit_min_p.def;
        s.repeat_penalty    = (float) k_limit_repeat_penalty.def;
        s.frequency_penalty = (float) k_limit_frequency_penalty.def;
        s.presence_penalty  = (float) k_limit_presence_penalty.def;
        return s;
    }
};

// Empty when every field is in range (core/limits.h for the fields a user sets), else a
// message naming the field.
std::string validate(const ask_options & o);

struct ask_request {
    std::vector<chat_message> messages;  // the conversation; the last message is the user's request
    ask_options               opt;
    int32_t                   attachments = 0;  // images and tables already folded into messages (router feature)
    // What the auto router reads; empty: the last user message. Attachments set it to the
    // user's own words, so that an image's OCR text or a table's summary does not pass for
    // the question.
    std::string               route_text;
    // The prompt cache's sharing scope for every sequence of this request (chat_request::
    // cache_salt): prefixes are reused only from earlier requests with the same salt. A
    // server sets it per user (scoped_cache_salt in server/openai-api.h); empty: the default
    // scope, which the CLI's one user has to itself.
    std::string cache_salt;
};

enum agent_kind { AGENT_ANSWER, AGENT_PLANNER, AGENT_SUBTASK, AGENT_SOLVER, AGENT_SYNTHESIZER, AGENT_REFINER, AGENT_ROUTER, AGENT_VERIFIER };
const char * agent_kind_name(agent_kind k);

// One agent of a request: what it did (agents/agent.h) and the part it played.
struct ask_agent_trace : agent_trace {
    int         index = 0;  // position in ask_result::agents
    agent_kind  kind  = AGENT_ANSWER;
    std::string task_id;    // sub-tasks: the plan task
};

struct ask_usage {
    int32_t shared_prefix_tokens    = 0;  // the shared prompt, prefilled once for all agents
    int32_t prompt_tokens_prefilled = 0;  // all sequences together, shared prefix included
    int32_t prompt_tokens_reused    = 0;  // taken from a parent's KV cache through fork
    int32_t completion_tokens       = 0;
    int32_t planner_tokens          = 0;  // the planner's share of completion_tokens (at most planner_budget)
    int32_t tokens_saved_by_pruning = 0;
};

struct ask_result {
    std::string answer;
    std::string reasoning;
    ask_mode    mode_requested = MODE_AUTO;
    ask_mode    mode           = MODE_INSTANT;  // the mode that ran
    std::string mode_reason;
    bool        has_plan = false;
    plan        plan_used;
    std::vector<ask_agent_trace> agents;
    std::string aggregation;  // single, vote, synthesis (answer: the synthesiser's), synthesis_all_pruned,
                              // synthesis_unfinished (no agent answered in its tokens),
                              // best_after_synthesis_failed (the synthesiser failed: the most
                              // confident answer stands), none
    vote_result vote;
    double      confidence = 0;  // vote: agreement; otherwise the answering agents' mean token probability
    ask_usage   use;
    std::vector<step_timing> timings;
    double      total_ms = 0;
    finish_reason finish = FINISH_NONE;  // FINISH_TOOL_CALLS: see tool_calls
    error       err;
    std::vector<chat_tool_call> tool_calls;  // client tools to run (ask_options::client_tools)
    // The safety gates' verdict on this request (app/safety-door.h), a JSON object's text, or
    // empty when no gate ran: the trace shows it as `safety`.
    std::string safety_json;
};

struct ask_event {
    enum type_t {
        MODE,         // text: the mode chosen (and mode_reason in detail)
        PLAN,         // text: the plan as JSON
        AGENT_START,  // agent, kind, role
        AGENT_DELTA,  // agent, delta (REASONING or CONTENT), text
        AGENT_TOOL,   // agent, text: "name(args) -> result"
        AGENT_END,    // agent, detail: "answered" / "pruned" / "failed: ..."
        AGGREGATE,    // text: the vote or synthesis summary
    } type = MODE;
    int                agent = -1;
    agent_kind         kind  = AGENT_ANSWER;
    std::string        role;
    chat_event::type_t delta = chat_event::CONTENT;
    std::string        text;
    std::string        detail;
    int32_t            tokens = 0;  // the agent's tokens so far
};

using ask_sink = std::function<void(const ask_event &)>;

class orchestrator {
  public:
    orchestrator(backend & be, tool_registry tools);

    // Runs one request to its end. A cancel (the caller's cancel_source) reaches the agents'
    // live streams at once through callbacks: they end at the next engine step, steps not yet
    // started do not start, and the result says FINISH_CANCELLED.
    ask_result run(const ask_request & req, const ask_sink & sink = nullptr, const cancel_token & cancel = {});

    const tool_registry & tools() const { return reg; }

  private:
    backend &     be;
    tool_registry reg;
};

}  // namespace muse
