#pragma once
// OpenAI's Responses API wire format, both ways: a /v1/responses body turned into the chat
// request the chat route runs (input items as chat messages, the fields renamed), and a run's
// events turned into the typed stream events (response.created ... response.completed) and the
// final `response` object. No I/O here, as in openai-api.h: unit-tested without a model.
//
//   response_builder b(skeleton, false);
//   send(b.start());                      // response.created, response.in_progress
//   for each ask_event ev: send(b.event(ev));   // reasoning_text / output_text deltas
//   ojson final; send(b.finish(result, final));  // the items' ends, response.completed

#include "openai-api.h"

#include <string>
#include <vector>

namespace muse {

// An input or output item (or a bare string: a user message) as a chat message. `msg` null: an
// item that is not replayed (earlier reasoning). `where` names the item in errors.
api_error response_item_to_message(const ojson & it, const std::string & where, ojson & msg, std::vector<std::string> & file_ids);

// The chat-completions body of a /v1/responses body. `history`: the chat messages that go first
// (a stored conversation's, or the previous responses' chain); `input` gets the request's own
// input items (a string input as one user message); `offset` is where they start in `messages`.
struct responses_request {
    ojson                    chat;      // the /v1/chat/completions body
    ojson                    input;     // the input items, as they will be stored
    std::vector<std::string> file_ids;  // input_image / input_file parts naming uploaded files
    size_t                   offset = 0;
    bool                     stream = false;
    bool                     store  = true;       // store (default true)
    bool                     truncate = false;    // truncation: "auto"
    bool                     muse_events = false; // stream_options.muse_events: the trace as muse.event events
};
api_error parse_responses_request(const ojson & body, const ojson & history, responses_request & out);

// A chat request's error in the names the Responses request used ("messages[7]" ->
// "input[2]" when the input starts at message 5; max_tokens -> max_output_tokens, ...).
void rename_chat_error(api_error & e, size_t offset);

// The Responses `usage` object of one result.
ojson response_usage(const ask_result & r);

// The stream events and the final object of one response. Each call returns the events to send
// (as `event: TYPE` / `data: JSON`), each with its sequence_number.
class response_builder {
  public:
    // `skeleton`: the response object's fixed fields (id, created_at, model, instructions, ...).
    response_builder(ojson skeleton, bool muse_events);

    std::vector<ojson> start();
    std::vector<ojson> event(const ask_event & ev);
    // The open items closed with the result's own text, tool calls and (for a vote or synthesis)
    // the answer as whole items, then response.completed or response.incomplete. `final`: the
    // response object, as GET /v1/responses/ID returns it.
    std::vector<ojson> finish(const ask_result & r, ojson & final);
    // A failure after the stream began: `error`, then response.failed.
    std::vector<ojson> fail(const api_error & e);

  private:
    struct open_item {
        int         index = -1;  // in output; -1: not opened
        bool        done  = false;
        std::string id;
        std::string text;  // streamed so far
    };
    ojson              make(const char * type, ojson fields);
    void               open_reasoning(std::vector<ojson> & out);
    void               open_message(std::vector<ojson> & out);
    void               close(open_item & it, const std::string & text, std::vector<ojson> & out);
    ojson              response(const char * status) const;

    ojson     skeleton;
    ojson     output = ojson::array();
    bool      muse_events;
    int64_t   seq = 0;
    open_item reasoning, message;
};

}  // namespace muse
