#pragma once
// The OpenAI chat-completions wire format, both ways: a request body parsed and range-checked
// into an ask_request (plus what the server still has to fetch: images, uploaded files), and
// ask results / events turned into `chat.completion` responses and `chat.completion.chunk`
// stream events, with Muse's additions (`reasoning_content`, the `muse` object, agent tags).
//
// No I/O here: the server does the HTTP, this file does the meaning, so it is unit-tested
// without a model.

#include "app/assistant.h"
#include "core/limits.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace muse {

using ojson = nlohmann::ordered_json;

// Caps a server puts on one request (set from `muse serve` flags). Each lies inside its
// range in core/limits.h, which the parser checks first; the defaults come from there too.
struct api_limits {
    int32_t max_tokens         = (int32_t) k_limit_max_tokens.serve_default;  // answer tokens per agent
    int32_t default_max_tokens = (int32_t) k_limit_max_tokens.def;
    int32_t max_images         = (int32_t) k_limit_images.serve_default;
    int32_t max_agents         = (int32_t) k_limit_agents.serve_default;      // contemplating solvers per request
    int32_t max_n              = (int32_t) k_limit_n.max;                     // choices per request
    int32_t max_messages       = (int32_t) k_limit_messages.max;
    int32_t max_tools          = (int32_t) k_limit_tools.max;
    int32_t max_attachments    = (int32_t) k_limit_attachments.max;           // uploaded files per request
    int32_t max_budget         = (int32_t) k_limit_thinking_budget.max;       // thinking tokens per agent
    int32_t max_planner_budget = (int32_t) k_limit_planner_budget.max;        // the planner's tokens per request
};

// The most a request may set or send for `l` on a server with caps `lim`: the server's cap
// where it has one for that limit, never past the table's maximum. The parser checks against it.
double api_max(const api_limits & lim, const limit & l);

// GET /v1/limits: what the parser accepts, for a front end to refuse what the server would.
//   {"object":"muse.limits", "modes":[...], "reasoning_efforts":[...],
//    "max_agents", "max_thinking_budget", "max_planner_budget", "max_tokens", "default_max_tokens",
//    "max_n", "max_messages", "max_tools", "max_images", "max_attachments", "max_stop",
//    "max_stop_bytes", "max_cache_salt_bytes",
//    and per numeric field (temperature, top_p, ..., thinking_budget, agents, planner_budget, n):
//    {"min", "max", "default", "integer"[, "min_exclusive": true][, "special", "special_meaning"]}}
ojson limits_json(const api_limits & lim);

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
struct api_error {
    int         status = 0;  // HTTP status; 0 = no error
    std::string message;
    std::string type  = "invalid_request_error";
    std::string param;       // the offending field, when there is one
    std::string code;
    explicit operator bool() const { return status != 0; }
};

api_error bad_request(std::string param, std::string message);
ojson     error_json(const api_error & e);
// The HTTP status and error for a failed ask_result.
api_error result_error(const error & e);

struct chat_api_request {
    ask_request ask;                     // conversation (text), options, client tools
    std::string model;                   // as the client named it (informational)
    int32_t     n             = 1;
    bool        stream        = false;
    bool        include_usage = false;   // stream_options.include_usage
    std::vector<std::string> image_urls; // image_url parts, in order: data: URIs or http(s) URLs
    std::vector<std::string> file_ids;   // `attachments`: uploaded files
    bool        mode_given    = false;   // mode or reasoning_effort said which mode
    // Muse: a stored conversation (POST /v1/conversations) this turn continues: its messages go
    // before `messages`, and the turn (these messages and the answer) is appended to it.
    std::string conversation_id;
};

// Parses and checks a /v1/chat/completions body. Every numeric field is range-checked against
// core/limits.h (narrowed by `lim`); the error names the field.
api_error parse_chat_request(const nlohmann::json & body, const api_limits & lim, chat_api_request & out);
// The same from the body's text: nesting over k_max_json_depth, text that is not JSON and
// fields of the wrong type are 400s, never exceptions.
api_error parse_chat_body(const std::string & text, const api_limits & lim, chat_api_request & out);

// reasoning_effort -> mode and thinking budget (README documents the table).
bool effort_mode(const std::string & effort, ask_mode & mode, int32_t & budget);

const char * openai_finish_reason(finish_reason f);

// The OpenAI `usage` object of one or more results.
ojson usage_json(const std::vector<ask_result> & results);

// A whole non-streamed response.
ojson completion_json(const std::string & id, int64_t created, const std::string & model,
                      const std::vector<ask_result> & results);

// One orchestrator event as the `muse` object of a stream event (mode, plan, agent_start,
// delta, tool, agent_end, aggregate); the answering agent's delta carries no text (the text is
// the reply itself, sent in the API's own field).
ojson trace_event_json(const ask_event & ev);

// The chunks of one streamed response. Each call returns the chunks (JSON objects) to send
// as `data:` events, in order.
class chunk_builder {
  public:
    chunk_builder(std::string id, int64_t created, std::string model, int n);

    std::vector<ojson> start();                                     // the role deltas
    std::vector<ojson> event(int choice, const ask_event & ev);     // one orchestrator event
    std::vector<ojson> finish(int choice, const ask_result & r);    // the answer's end, with the muse trace
    ojson              usage(const std::vector<ask_result> & results) const;  // include_usage's last chunk

  private:
    ojson chunk(int choice, ojson delta, const char * finish = nullptr) const;

    std::string id, model;
    int64_t     created;
    std::vector<ask_mode>    modes;     // per choice: the mode that runs
    std::vector<std::string> streamed;  // per choice: answer content already sent
};

}  // namespace muse
