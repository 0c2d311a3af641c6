#pragma once
// The local backend: chat requests rendered with the model's own template and run on the
// Muse engine (llama.cpp), parsed back into reasoning / content / tool calls.

#include "backend.h"

namespace muse {

class engine;

class local_backend : public backend {
  public:
    // The engine (and its model) must outlive the backend.
    explicit local_backend(engine & eng);

    std::unique_ptr<chat_stream> start(const chat_request & req) override;
    backend_info                 info() const override;

    // Renders a request as the engine will see it; for tests and debugging.
    error build(const chat_request & req, sequence_request & out, chat_prompt & prompt) const;

  private:
    engine & eng;
};

}  // namespace muse
