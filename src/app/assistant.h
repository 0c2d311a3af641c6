#pragma once
// The one door: every front end (the HTTP chat route, `muse ask`) hands its request to the
// assistant, which applies the same rules to all of them. It checks the combination of
// options (mode × JSON schema × client tools × n), runs the input hooks, reads the
// attachments within the request's memory budget, scopes the prompt cache to the user, builds
// the request's tool set, runs the orchestrator (n choices at once) and the output hooks.
//
//   muse::assistant a(backend);
//   a.add_input_hook(std::make_shared<my_policy>());        // optional policies, in order
//   muse::ask_input in;
//   in.session.user = "alice";
//   in.request.messages = { { "user", "What is in this table?" } };
//   in.attachments.push_back({ muse::attachment_input::TABLE, "sales.csv", csv_bytes });
//   muse::ask_output out;
//   muse::ask_refusal why;
//   muse::cancel_source stop;                                // stop.request_stop() cancels it
//   if (error e = a.ask(std::move(in), sink, stop.get_token(), out, &why)) { ... refused: why.field, e.message ... }
//   out.results[0].answer;
//
// Thread safety: ask() and check() from any number of threads at once; add hooks before the
// first ask().

#include "backend/backend.h"
#include "core/cancel.h"
#include "perception/attachment-set.h"
#include "reasoning/orchestrator.h"
#include "safety/policy.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace muse {

// Who asks, and (later) in which stored conversation.
struct ask_session {
    std::string user = "local";  // from the API key; the CLI's one user is "local"
    std::string conversation;    // reserved for stored conversations
};

// An attachment as the front end received it: not yet decoded or parsed.
struct attachment_input {
    enum kind_t { IMAGE, TABLE } kind = IMAGE;
    std::string name;    // shown to the model and in errors ("sales.csv", "image 2")
    std::string bytes;   // the file's bytes (encoded image, table text, an image's data: URI); or
    std::shared_ptr<const std::string> shared;  // bytes kept elsewhere (a file store); or
    std::string path;    // a file to read
    std::string format;  // a table's format hint (csv, tsv, json, jsonl); "": from the name
    std::string field;   // the request field it came from, for errors ("" = attachments)
};

struct ask_input {
    ask_session                   session;
    ask_request                   request;      // conversation and options
    std::vector<attachment_input> attachments;
    int32_t                       n = 1;        // independent answers (instant and thinking)
    // Attachments the front end has read already (the CLI reads files before loading the
    // model): used instead of `attachments` when set.
    std::shared_ptr<attachment_set> read;
};

// A request that passed the rules and the hooks, with its attachments read and its tools built:
// ready to run (a streaming front end prepares, then commits its reply, then runs).
struct prepared_ask {
    ask_input                      in;
    std::shared_ptr<attachment_set> att;
    std::shared_ptr<tool_registry> tools;
    std::shared_ptr<safety_decision> safety;  // the safety gates' decision (null: no gates)
};

struct ask_output {
    std::vector<ask_result>  results;  // one per choice
    nlohmann::ordered_json   attachments = nlohmann::ordered_json::array();  // what was read from each
    std::vector<std::string> tools;    // the tools the agents were offered
};

// Why a request was refused: the option at fault (neutral names: mode, json_schema, tools, n,
// attachments, messages, or a hook's name) and the message.
struct ask_refusal {
    std::string field;
};

// A policy that sees (and may rewrite or refuse) every request before it runs.
class input_hook {
  public:
    virtual ~input_hook() = default;
    virtual std::string name() const = 0;
    // An error refuses the request; its message reaches the client.
    virtual error check(const ask_session & s, ask_request & req) = 0;
};

// A policy that sees every result before the front end does.
class output_hook {
  public:
    virtual ~output_hook() = default;
    virtual std::string name() const = 0;
    virtual void check(const ask_session & s, const ask_request & req, std::vector<ask_result> & results) = 0;
};

class safety_door;

struct assistant_params {
    size_t  request_memory = attachment_set::k_default_budget;  // decoded images and tables per request
    int32_t max_n          = 16;
    // The safety gates (app/safety-door.h): classification, guidance, disclaimers, redaction.
    // Null: none (library users who bring their own hooks).
    std::shared_ptr<safety_door> safety;
};

// The rules on combinations of options that every front end shares (mode × JSON schema ×
// client tools × n), normalising `req` (a JSON schema without thinking means instant; instant
// offers no built-in tools). The API's parser and the CLI's flags call it, and so does
// assistant::check: one implementation, so the front ends cannot disagree.
error check_ask_rules(ask_request & req, int32_t n, int32_t max_n, ask_refusal * why = nullptr);

// The prompt-cache scope of a user's request (ask_request::cache_salt): the user's, split
// further by the client's own salt (vLLM's `cache_salt`). assistant::ask applies it, so that
// one user's requests never reuse, nor measure through cached_tokens, another's prefixes.
std::string scoped_cache_salt(const std::string & user, const std::string & client_salt);

using choice_sink = std::function<void(int choice, const ask_event & ev)>;

class assistant {
  public:
    explicit assistant(backend & be, assistant_params p = {});

    void add_input_hook(std::shared_ptr<input_hook> h);
    void add_output_hook(std::shared_ptr<output_hook> h);

    // The rules every front end shares, applied to `in` (normalising it: a JSON schema without
    // a mode means instant; instant offers no built-in tools). An error names the field.
    error check(ask_input & in, ask_refusal * why = nullptr) const;

    // check(), the input hooks, the attachments (within the request's memory budget) and the
    // tool set. An error means the request is refused (nothing ran).
    error prepare(ask_input in, prepared_ask & p, ask_refusal * why = nullptr, const cancel_token & cancel = {}) const;

    // Runs a prepared request: n choices at once, then the output hooks. A failure while running
    // is in each result's err; a cancel stops every agent at its next step.
    void run(prepared_ask & p, const choice_sink & sink, const cancel_token & cancel, ask_output & out) const;

    // prepare() then run().
    error ask(ask_input in, const choice_sink & sink, const cancel_token & cancel, ask_output & out,
              ask_refusal * why = nullptr) const;

    backend & get_backend() const { return be; }
    // The safety gates, or null.
    safety_door * safety() const { return params.safety.get(); }

  private:
    backend &                                 be;
    assistant_params                          params;
    std::vector<std::shared_ptr<input_hook>>  in_hooks;
    std::vector<std::shared_ptr<output_hook>> out_hooks;
};

}  // namespace muse
