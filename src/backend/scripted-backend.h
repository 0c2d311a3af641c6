#pragma once
// The scripted backend replays fixed replies, word by word, through the Backend interface.
// It exists for unit tests of orchestration logic (modes, agents, aggregation): it never
// stands in for the real engine in anything a user runs.

#include "backend.h"

#include <functional>
#include <mutex>
#include <optional>
#include <set>

namespace muse {

struct scripted_reply {
    std::string                 reasoning;
    std::string                 content;
    std::vector<chat_tool_call> tool_calls;
    error                       err;  // when set, the stream ends with this error
    // Per piece (reasoning pieces first, then content), reported when the request asks for
    // logprobs; pieces beyond the list report 0.
    std::vector<float>          logprobs;
};

class scripted_backend : public backend {
  public:
    // Replies are served in order; `fallback` answers once they run out (default: an error).
    explicit scripted_backend(std::vector<scripted_reply> replies = {});

    void add(scripted_reply r);
    // Chooses the reply from the request instead of the queue when set.
    void set_responder(std::function<scripted_reply(const chat_request &)> fn);

    std::unique_ptr<chat_stream> start(const chat_request & req) override;
    backend_caps                 caps() const override;

    std::vector<chat_request> requests() const;  // every request seen, in order

    // What caps() reports (default: everything). Without fork, a request that asks to fork or
    // retain fails, as a remote backend would refuse it.
    void set_caps(backend_caps c);

  private:
    mutable std::mutex                                  mu;
    std::vector<scripted_reply>                         replies;
    size_t                                              next_reply = 0;
    std::function<scripted_reply(const chat_request &)> responder;
    std::vector<chat_request>                           seen;
    std::set<uint64_t>                                  started;  // ids a fork may name
    uint64_t                                            next_id = 1;
    std::optional<backend_caps>                         caps_set;
};

}  // namespace muse
