#pragma once
// Chat formatting and parsing through llama.cpp common/chat, with the template stored in
// the model: messages -> prompt (+ grammar, stops, reasoning syntax for budget forcing);
// generated text -> reasoning_content / content / tool calls, incrementally.
//
// Thread safety: format_chat() only reads the model; a chat_output_parser belongs to one
// reader thread.

#include "core/chat-types.h"
#include "core/error.h"

#include "chat.h"

#include <memory>
#include <string>
#include <vector>

namespace muse {

class model;

struct chat_prompt_options {
    std::vector<chat_message> messages;
    std::vector<chat_tool>    tools;
    std::string               tool_choice = "auto";  // auto, none or required
    reasoning_mode            reasoning = REASONING_AUTO;
    std::string               json_schema;  // constrain the answer to this JSON schema (reasoning is then off)
    std::string               grammar;      // or a GBNF grammar
    std::string               reasoning_strength;  // Muse Glimmer: low, medium or high (empty: the template's default)
    // Text the assistant's turn starts with, as if the model had written it (inside the
    // reasoning when reasoning is on). Requests that differ only here share their whole
    // rendered conversation, template tail included.
    std::string               assistant_prefix;
    // The sharing scope of the model's memo of recent renders (render-memo.h), as
    // sequence_request::cache_salt scopes the prompt cache: a render is reused only within it,
    // so how fast a request renders says nothing about another scope's conversations.
    std::string               cache_salt;
};

// How a family opens and closes its reasoning, in its own syntax.
struct reasoning_syntax {
    std::string              start;   // e.g. "<think>"
    std::vector<std::string> ends;    // e.g. { "</think>" }
    std::string              forced;  // what budget forcing appends to close reasoning and start the answer
    bool empty() const { return start.empty() || ends.empty(); }
};

struct chat_prompt {
    std::string                         prompt;
    common_grammar                      grammar;
    bool                                grammar_lazy = false;
    std::vector<common_grammar_trigger> grammar_triggers;
    std::vector<std::string>            preserved_tokens;
    std::vector<std::string>            stops;  // extra stop strings the template asks for
    std::string                         generation_prompt;  // text the parser and samplers treat as already generated
    bool                                reasoning = false;  // reasoning is open/allowed for this request
    reasoning_syntax                    syntax;
    common_chat_parser_params           parser;
};

// Formats the conversation. Returns an error (ERROR_INVALID_ARGUMENT) for what the template
// or the request cannot express.
error format_chat(const model & m, const chat_prompt_options & opts, chat_prompt & out);

struct chat_delta {
    std::string reasoning;          // reasoning_content delta
    std::string content;            // content delta
    int         tool_call_index = -1;  // >= 0: a tool call delta
    chat_tool_call tool_call;
};

// Turns the raw generated text into structured deltas as it streams.
class chat_output_parser {
  public:
    explicit chat_output_parser(common_chat_parser_params params);

    // Adds generated text; appends what changed to `out`. final = no more text will come.
    void update(const std::string & added, bool final, std::vector<chat_delta> & out);

    const common_chat_msg & message() const { return msg; }

  private:
    common_chat_parser_params params;
    std::string               text;
    common_chat_msg           msg;
    std::vector<std::string>  tool_call_ids;
    bool                      raw = false;  // the output left the format: pass the rest through as content
    common_chat_msg           raw_base;     // what was understood before it left
    size_t                    raw_from = 0; // text offset where the pass-through starts
    size_t                    parsed   = 0; // text length at the last parse that understood something
};

}  // namespace muse
