#pragma once
// The HTTP transport under `muse serve`: event-driven (libmicrohttpd, one epoll thread), so an
// idle or trickling connection costs a socket and a few kilobytes, never a thread. Handlers run
// on a worker pool once a request's headers and body are complete; the epoll thread only reads,
// writes and calls the cheap `on_headers` hook.
//
//   http::server h;
//   h.route("POST", "/v1/files/:id", [](http::request & req, http::response & res) { ... });
//   h.on_headers = [](http::request & req, http::response & res) { return false; };  // auth, 429...
//   if (error e = h.start(opts)) { ... }
//   ...
//   h.stop_accepting();   // SIGTERM: no new connections; unfinished requests are dropped
//   h.stop();             // every connection closed, every worker joined
//
// Deadlines and caps (http::options): a request's headers must arrive within header_timeout_s
// of the connection opening (or of its previous response), its body within body_timeout_s of
// the headers; connections per client address and in all are capped; headers beyond
// max_header_bytes get 431 and bodies beyond max_body 413 (checked from Content-Length before a
// byte of the body is read, and again while a chunked body arrives).
//
// Thread safety: route()/on_headers before start(); start/stop from one controlling thread.
// stream::write/finish from any thread.

#include "core/cancel.h"
#include "core/error.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct MHD_Connection;

namespace muse::http {

// The response body of a streamed reply (SSE): producers write from any thread; the connection
// sends what is there and sleeps (suspended, no thread) until more comes.
class stream {
  public:
    // False once the client has gone (or the server closed the connection): stop producing.
    bool write(std::string_view bytes);
    // After the last write: the reply ends once the buffer is sent.
    void finish();
    bool gone() const { return client_gone.load(); }

    // Called once, on some thread, when the reply ended: true when everything was sent.
    std::function<void(bool complete)> on_close;

  private:
    friend struct transport;
    std::mutex        mu;
    std::string       buf;
    size_t            sent = 0;         // bytes of buf already handed to the socket
    bool              finished = false;
    bool              suspended = false;
    bool              closed = false;   // the connection is gone: never resume it
    std::atomic<bool> client_gone{ false };
    MHD_Connection *  conn = nullptr;
    void close_once(bool complete);
    std::atomic<bool> close_called{ false };
};

struct request {
    std::string method;
    std::string path;         // without the query string, percent-decoded
    std::string route;        // the pattern of the route it matched ("/v1/files/:id")
    std::string remote_addr;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::map<std::string, std::string>               params;   // ":id" segments of the route
    std::map<std::string, std::string>               query;    // ?key=value, decoded (at most 32; longer ones dropped)
    std::string body;

    // The header's value ("" when absent); `name` lower-case.
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;

    // Stopped the moment the client closes its connection (a callback registered on it runs
    // then, on the watchdog's thread; one registered later runs at once).
    cancel_token gone;

    // Sends the response's status and headers now (for a streamed reply) while the handler goes
    // on writing to response::stream; after it the handler must not touch the response.
    std::function<void()> commit = [] {};

    // What on_headers decided, for the handler: the authenticated user, and a hold that is
    // released when the request ends however it ends (e.g. an admission ticket).
    std::string           user;
    std::shared_ptr<void> hold;
};

struct response {
    int         status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // A streamed reply: the body above is ignored; the handler sets it, calls request::commit()
    // and writes to the stream (from any thread), then finishes it.
    std::shared_ptr<http::stream> stream;

    void set_header(std::string name, std::string value);
    void set_content(std::string body, std::string content_type);
};

using handler = std::function<void(request &, response &)>;

struct options {
    std::string host = "127.0.0.1";
    int32_t     port = 8080;                 // 0: any free port
    size_t      max_body = 48u << 20;
    size_t      max_header_bytes = 64u << 10;
    double      header_timeout_s = 10;       // from the connection (or its last reply) to the headers' end
    double      body_timeout_s   = 60;       // from the headers to the body's end
    double      idle_timeout_s   = 30;       // a connection with nothing moving
    int32_t     max_connections  = 1000;
    int32_t     max_per_address  = 64;       // connections from one client address
    int32_t     max_workers      = 256;      // handler threads (requests beyond wait for one)
};

std::string validate(const options & o);

// One part of a multipart/form-data body.
struct form_part {
    std::string name, filename, content_type, data;
};
// Splits a multipart/form-data body (boundary from `content_type`); at most max_parts parts.
error parse_multipart(const std::string & body, const std::string & content_type, size_t max_parts,
                      std::vector<form_part> & parts);

struct transport;

class server {
  public:
    server();
    ~server();

    // Pattern segments starting with ':' capture into request::params.
    void route(std::string method, std::string pattern, handler h);

    // Runs on the event thread once a request's headers are in, before its body is read (after
    // the route is matched: request::params is set, the body is empty). Return true when `res`
    // answers the request at once (401, 413, 415, 429...): the body is never read. Keep it cheap.
    std::function<bool(request &, response &)> on_headers;

    // Answers for a path with no route (404) or a known path with another method (405).
    std::function<void(request &, response &)> on_not_found;

    // Runs (on a worker) when a handler throws: fills a 500 the client sees.
    std::function<void(request &, response &, const std::string & what)> on_exception;

    // Once per finished request (any thread).
    std::function<void(const request &, const response &)> on_logged;

    // After a request has ended, however it ended, and left busy_requests() (any thread): what
    // a drain waits on, so that it needs no polling.
    std::function<void()> on_request_ended;

    error start(const options & o);
    int32_t port() const;

    // No new connections; requests still arriving (headers or body incomplete) are dropped.
    // Requests being handled and streams go on.
    void stop_accepting();

    // Closes every connection and joins every thread; streams still open see gone().
    void stop();

    int32_t open_connections() const;
    // Requests handed to a handler whose reply has not been sent to its end (or dropped).
    int32_t busy_requests() const;

  private:
    std::unique_ptr<transport> t;
};

}  // namespace muse::http
