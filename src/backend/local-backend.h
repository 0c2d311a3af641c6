#pragma once
// The local backend: chat requests rendered with the model's own template and run on the
// Muse engine (llama.cpp), parsed back into reasoning / content / tool calls.

#include "backend.h"
#include "engine/chat-format.h"
#include "engine/sequence.h"

namespace muse {

class vision_encoder;
struct vision_stats;

class engine;

class local_backend : public backend {
  public:
    // The engine (and its model) must outlive the backend.
    explicit local_backend(engine & eng);
    ~local_backend() override;

    std::unique_ptr<chat_stream> start(const chat_request & req) override;
    backend_caps                 caps() const override;
    std::vector<backend_metric>  stats() const override;
    error                        count_prompt_tokens(const chat_request & req, int32_t & n) const override;

    // Image encodings done and served from the cache (zero without a projector).
    vision_stats vision_counters() const;

    // Renders a request as the engine will see it; for tests and debugging.
    error build(const chat_request & req, sequence_request & out, chat_prompt & prompt) const;

    // The model's control-token texts ("<|im_start|>", "<think>", ...): in message text they
    // are broken (a word joiner after the first character) so that they stay text and never
    // become control tokens (a table cell cannot end the user's turn).
    const std::vector<std::string> & control_texts() const { return controls; }

  private:
    engine & eng;
    std::vector<std::string> controls;
    std::unique_ptr<vision_encoder> vision;  // with a projector: image encodings, cached by content
};

}  // namespace muse
