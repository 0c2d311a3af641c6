#pragma once
// The Backend interface: what every reasoning mode and agent runs on. A backend starts chat
// sequences (optionally forked from a live one), streams their reasoning, content and tool
// calls, and cancels them. Implementations: local (llama.cpp engine), scripted (replays
// fixed outputs, for orchestration tests), remote (later).
//
//   auto stream = backend.start(req);
//   muse::chat_event ev;
//   while (stream->next(ev)) { if (ev.type == muse::chat_event::CONTENT) std::cout << ev.text; }
//
// Thread safety: start() may be called from any thread; each stream belongs to one reader.

#include "core/chat-types.h"
#include "core/error.h"

#include <memory>
#include <string>
#include <vector>

namespace muse {

struct chat_request {
    std::vector<chat_message> messages;
    std::vector<chat_tool>    tools;
    std::string               tool_choice = "auto";  // auto, none (tools shown, no calls) or required
    reasoning_mode            reasoning        = REASONING_AUTO;
    int32_t                   reasoning_budget = -1;  // thinking tokens before budget forcing; -1 = unlimited
    sampling_params           sampling;
    int32_t                   max_tokens = -1;        // -1: until the context is full
    std::vector<std::string>  stop;
    std::string               json_schema;  // constrain the answer (then reasoning is off)
    std::string               grammar;      // GBNF alternative to json_schema

    // Muse Glimmer's "Reasoning strength" (low, medium, high); other families ignore it.
    std::string reasoning_strength;
    // Text the assistant's turn starts with, as if generated (inside the reasoning when it is
    // on): lets forked agents differ only after the shared prompt's template tail.
    std::string assistant_prefix;

    uint64_t fork_from = 0;      // id of a live/retained stream whose prompt prefix to share
    bool     retain    = false;  // keep this stream's cache after it ends, for later forks
    bool     logprobs  = false;  // report generated tokens' log-probabilities (chat_event::logprobs)
    // Cache sharing scope (sequence_request::cache_salt): a stream reuses cached prompts and
    // forks parents of its own salt only. Requests of one user share one; empty: the default scope.
    std::string cache_salt;
    // The rendered prompt up to the first occurrence of this text is the same for every caller
    // (a guard model's fixed task prompt before the turn it judges): its cached cells may be
    // shared across cache salts. Set by Muse's own components, never from a client's request.
    std::string public_until;
};

struct chat_event {
    enum type_t {
        REASONING,  // text: a reasoning_content delta
        CONTENT,    // text: a content delta
        TOOL_CALL,  // tool_call_index / tool_call: a tool call (or its arguments) delta
        DONE,       // finish, use, err: the last event
    } type = CONTENT;
    std::string    text;
    int            tool_call_index = -1;
    chat_tool_call tool_call;
    finish_reason  finish = FINISH_NONE;
    usage          use;
    error          err;
    // With chat_request::logprobs: the log-probabilities of the tokens generated since the
    // previous event (a token the parser holds back is reported with a later event).
    std::vector<float> logprobs;

    static chat_event delta(type_t t, std::string s) {
        chat_event ev;
        ev.type = t;
        ev.text = std::move(s);
        return ev;
    }
};

class chat_stream {
  public:
    virtual ~chat_stream() = default;
    virtual uint64_t id() const = 0;
    // Blocks for the next event; false after DONE was returned.
    virtual bool next(chat_event & ev) = 0;
    virtual void cancel() = 0;
};

// What a backend can do: modes, routes and the API read this, never the implementation.
struct backend_caps {
    std::string name;              // "local", "scripted", ...
    std::string model;             // the model's description
    bool        fork      = false; // chat_request::fork_from shares a prefix (else it is recomputed)
    bool        reasoning = false; // the model has a reasoning mode
    bool        vision    = false; // messages may carry images as pictures
    bool        grammar   = false; // json_schema / grammar constraints
    bool        logprobs  = false; // chat_event::logprobs
    bool        tools     = true;  // the model can be shown tools and call them (its chat template says so)
    int32_t     n_ctx     = 0;     // tokens one request's sequence may hold
    int32_t     n_ctx_train = 0;   // the context the model was trained on; 0: unknown
    // A prompt of more bytes than this cannot fit n_ctx tokens (so front ends can refuse it
    // before rendering or tokenising it); 0: unknown.
    size_t      max_prompt_bytes = 0;
    std::string meta_json = "{}";  // model details (/v1/models): a JSON object's text
};

// One counter or gauge of a backend's own (Prometheus naming: muse_engine_..., with its help).
struct backend_metric {
    std::string name;
    std::string type;  // counter or gauge
    std::string help;
    double      value = 0;
};

class backend {
  public:
    virtual ~backend() = default;
    virtual std::unique_ptr<chat_stream> start(const chat_request & req) = 0;
    virtual backend_caps                 caps() const = 0;
    // What /metrics shows of this backend.
    virtual std::vector<backend_metric>  stats() const { return {}; }
    // The tokens req's messages and tools take, rendered as start() would render them (images
    // not counted), for callers that must fit a history into n_ctx (truncation). An error: this
    // backend cannot tell.
    virtual error count_prompt_tokens(const chat_request & req, int32_t & n) const;
    // Whether the backend can take requests now (a remote server answers its health check);
    // ERROR_UNAVAILABLE when it cannot. Quick: a routing backend calls it in the background.
    virtual error health() const { return {}; }
};

// The checks every backend makes before it starts a request, so that every front end sees the
// same errors: messages present, sampling in range, max_tokens >= -1, at most the request
// limits' stop strings, and no fork or retain where the backend cannot (can_fork false).
error check_request(const chat_request & req, bool can_fork);

// The whole answer of a stream, read to its end.
struct chat_result {
    std::string                 reasoning;
    std::string                 content;
    std::vector<chat_tool_call> tool_calls;
    finish_reason               finish = FINISH_NONE;
    usage                       use;
    error                       err;
    std::vector<float>          logprobs;  // every generated token's, with chat_request::logprobs

    // Folds one event in: deltas are appended, tool call pieces joined, DONE fills the rest.
    void add(const chat_event & ev);
};

chat_result collect(chat_stream & stream);

}  // namespace muse
