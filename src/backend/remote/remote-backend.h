#pragma once
// A backend on an OpenAI-compatible server: llama-server, vLLM, SGLang, Ollama's /v1, another
// `muse serve`. Each stream is one streamed POST /v1/chat/completions, its server-sent events
// parsed as they arrive (content, reasoning_content, tool-call deltas, log-probabilities, usage);
// cancel() closes the connection, which ends the generation upstream.
//
//   muse::remote_params p;
//   p.url = "http://127.0.0.1:8081";
//   muse::error err;
//   auto be = muse::remote_backend::connect(p, err);   // asks the server for its model and context
//   if (!be) { fprintf(stderr, "%s\n", err.message.c_str()); }
//
// caps().fork is false: a remote server shares prefixes through its own prompt cache, so the
// modes send each agent the whole conversation (contemplating: K requests with one prefix).
// Plain http:// only (no TLS in this build); keep the link on a trusted network or a tunnel.
//
// Thread safety: start() and caps() from any thread; each stream belongs to one reader.

#include "backend/backend.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

struct remote_params {
    std::string url;                       // http://host:port, with or without a trailing /v1
    std::string api_key;                   // sent as Authorization: Bearer KEY; empty: none
    std::string model;                     // the model to ask for; empty: the server's first
    int32_t     connect_timeout_s = 5;     // to open a connection
    int32_t     read_timeout_s    = 300;   // for the first token (a long prefill) and between events
    int32_t     n_ctx             = 0;     // tokens a request may hold; 0: from the server (/props), else 4096
    int32_t     max_idle          = 16;    // kept-alive connections kept for the next request
    // Images as pictures (OpenAI's image_url parts, PNG data URIs): 1 yes, 0 no (their OCR
    // text instead), -1 as the server says (llama-server's /props modalities.vision).
    int32_t     vision            = -1;
};

// "" when the parameters can be used, else what is wrong with them.
std::string validate(const remote_params & p);

class remote_backend : public backend {
  public:
    // Reaches the server (GET /v1/models, and llama-server's /props for its context) and
    // returns the backend, or null with err (ERROR_INVALID_ARGUMENT: bad parameters;
    // ERROR_UNAVAILABLE: the server cannot be reached or does not serve the model).
    static std::unique_ptr<remote_backend> connect(const remote_params & p, error & err);
    ~remote_backend() override;

    std::unique_ptr<chat_stream> start(const chat_request & req) override;
    backend_caps                 caps() const override;
    std::vector<backend_metric>  stats() const override;
    // GET /health (llama-server, vLLM, muse serve), else /v1/models, within the connect timeout.
    error                        health() const override;

    struct impl;

  private:
    explicit remote_backend(std::shared_ptr<impl> i);
    std::shared_ptr<impl> d;
};

// The JSON body of POST /v1/chat/completions for req (exposed for tests): OpenAI's fields,
// with llama.cpp's and vLLM's extensions where OpenAI has none (top_k, min_p, repeat_penalty,
// grammar, cache_salt, chat_template_kwargs.enable_thinking). Empty with err on a request the
// remote cannot carry (images: the server's own vision is not used yet).
std::string remote_request_body(const chat_request & req, const std::string & model, error & err);

}  // namespace muse
