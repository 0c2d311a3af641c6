#pragma once
// `muse serve`: the OpenAI-compatible HTTP API and the web chat over one assistant (the door of
// every chat) and its backend (caps for /v1/models and /health, stats for /metrics).
//
//   muse::assistant door(backend, muse::assistant_params_for(params));  // or app/runtime.h's
//   muse::server srv(door, keys, params);
//   if (error e = srv.start()) { ... }     // binds and serves on its own threads
//   ...                                     // SIGTERM:
//   srv.shutdown(30.0);                     // stop accepting, finish in-flight, then cancel
//
// Routes: POST /v1/chat/completions (SSE or not), POST/GET/DELETE /v1/files, GET /v1/models,
// GET /health, GET /metrics (Prometheus text), GET / (the web chat). With API keys, every
// route but /health needs `Authorization: Bearer KEY` (GET / without one: 401 carrying the
// page, which asks for the key).
//
// Admission: at most `parallel` requests run at once on the engine (each with all its
// agents); up to `queue` more wait; beyond that 429 with Retry-After; one user holds at most
// `user_slots` of them. A chat or upload is admitted from its headers, before its body is read,
// parsed or decoded. A client that disconnects cancels its request's sequences at the next
// engine step.
//
// Browsers: the Host header must name the server (DNS rebinding), CORS answers only the
// server's own origin and `allow_origins`, and JSON routes need Content-Type: application/json
// (a cross-site form or text/plain post cannot reach them without a preflight).
//
// Thread safety: start() and shutdown() from one controlling thread.

#include "server/api-keys.h"
#include "server/file-store.h"
#include "server/http.h"
#include "server/openai-api.h"

#include <memory>
#include <string>
#include <vector>

namespace muse {

struct server_params {
    std::string host = "127.0.0.1";
    int32_t     port = 8080;              // 0: any free port (see server::port())
    int32_t     parallel = 4;             // requests running at once
    int32_t     queue    = 32;            // requests waiting for a turn before 429
    size_t      max_body = 48u << 20;     // request body bytes (images travel as data: URIs)
    api_limits  limits;
    file_store_limits files;
    std::vector<std::string> image_hosts; // hosts whose http:// image URLs may be fetched
    std::vector<std::string> allow_origins; // browser origins besides the server's own ("*": any)
    std::vector<std::string> allow_hosts;   // Host header names besides loopback and the bound address ("*": any)
    std::string model_id;                 // the name /v1/models lists
    std::string metrics_key;              // with API keys: the key /metrics needs (empty: /metrics refused)
    bool        web      = true;          // serve the web chat at /
    bool        log_requests = true;      // one line per request on stderr
    bool        insecure_no_auth = false; // allow a non-loopback address without API keys
    int32_t     user_slots = 0;           // requests one user may have running or waiting; 0: parallel + queue / 2 with keys
    size_t      request_memory = 256u << 20; // decoded images and tables per request
    // Where users (`muse users add`) and uploaded files are stored ("" : files in memory, no
    // store users; ":memory:" : a store in memory). Users with keys there sign in beside --api-key's.
    std::string data_dir;
    // A PostgreSQL URL (--db): the store is there instead, shared by every node on it.
    std::string db;
    http::options transport;              // deadlines and connection caps (host/port/max_body from above)
};

// `has_keys`: whether API keys are configured (a non-loopback host needs them).
std::string validate(const server_params & p, bool has_keys = true);
bool        is_loopback_host(const std::string & host);

// The assistant's settings that follow the server's: the memory one request's attachments may
// take decoded, and the most choices (`n`) a request may ask for.
assistant_params assistant_params_for(const server_params & p);

class server {
  public:
    // The assistant (and its backend) must outlive the server.
    server(assistant & door, api_keys keys, server_params params);
    ~server();

    error start();
    int32_t port() const;

    // Stops accepting (requests still arriving are dropped), lets running and queued requests
    // finish for up to grace_s seconds (each stream ends with its last chunk and [DONE]), then
    // cancels what is left (a stream gets an error event) and closes every connection, within
    // about a second more. False when that was not clean: a reply was cut, or a handler is
    // still in work that cannot be cancelled (then the caller should exit without waiting).
    bool shutdown(double grace_s);

  private:
    struct impl;
    std::unique_ptr<impl> p;
};

}  // namespace muse
