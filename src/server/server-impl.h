#pragma once
// The inside of `muse serve`, shared by its files: server.cpp (hooks, start, drain) and one file
// per route group (routes-chat.cpp, routes-files.cpp, routes-info.cpp; image-fetch.cpp holds
// the one HTTP client).

#include "server.h"

#include "server/admission.h"

#include "core/cancel.h"

#include "app/assistant.h"
#include "backend/backend.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace muse {

using clock_type = std::chrono::steady_clock;

inline int64_t unix_now() {
    return (int64_t) std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// JSON for the wire: text that is not valid UTF-8 (a model's byte fallback cut mid-character,
// a tool's output) is replaced with U+FFFD instead of throwing on a thread with no handler.
inline std::string wire(const ojson & j) {
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

inline void send_error(http::response & res, const api_error & e) {
    res.status = e.status;
    res.set_content(wire(error_json(e)), "application/json");
}

inline api_error make_error(int status, std::string message, std::string type = "invalid_request_error", std::string code = "") {
    api_error e;
    e.status  = status;
    e.message = std::move(message);
    e.type    = std::move(type);
    e.code    = std::move(code);
    return e;
}

// Prometheus counters.
struct server_metrics {
    std::mutex                                  mu;
    std::map<std::pair<std::string, int>, uint64_t> requests;  // (route, status)
    std::atomic<uint64_t> prompt_tokens{ 0 }, completion_tokens{ 0 }, rejected{ 0 }, cancelled{ 0 }, chat_done{ 0 };
    std::atomic<uint64_t> ttft_count{ 0 }, ttft_us{ 0 }, request_us{ 0 };
    std::map<std::string, uint64_t> modes;
    double tokens_per_s = 0;

    void count(const std::string & route, int status) {
        std::lock_guard<std::mutex> lk(mu);
        requests[{ route, status }]++;
    }
};

// The metrics label of a route pattern (aliases without /v1 count with their /v1 route).
inline std::string route_label(const std::string & route) {
    if (route.empty()) return "other";
    std::string r = route.rfind("/v1/", 0) == 0 || route == "/" || route == "/index.html" || route == "/health" || route == "/metrics" ||
                            route.rfind("/assets/", 0) == 0 || route.rfind("/favicon.", 0) == 0
                        ? route : "/v1" + route;
    if (r == "/index.html") r = "/";
    if (const size_t c = r.find(":id"); c != std::string::npos) r.replace(c, 3, "{id}");
    if (const size_t c = r.find(":name"); c != std::string::npos) r.replace(c, 5, "{name}");
    return r;
}

// The routes of the web chat's libraries, fonts and icon (routes-assets.cpp): public, like the page.
bool is_web_asset_route(const std::string & route);

inline std::string bearer_token(const http::request & req) {
    std::string h = req.header("authorization");
    if (h.size() > 7 && (h.compare(0, 7, "Bearer ") == 0 || h.compare(0, 7, "bearer ") == 0)) {
        h = h.substr(7);
        while (!h.empty() && h.front() == ' ') h.erase(h.begin());
        while (!h.empty() && h.back() == ' ') h.pop_back();
        return h;
    }
    return req.header("x-api-key");
}

// Compares two strings of the same length without stopping at the first difference.
inline bool equal_in_constant_time(const std::string & a, const std::string & b) {
    unsigned char d = 0;
    for (size_t i = 0; i < a.size(); ++i) d |= (unsigned char) (a[i] ^ b[i]);
    return d == 0;
}

// The media type of a Content-Type value, lower-case, without parameters.
inline std::string media_type(const std::string & content_type) {
    std::string t = content_type.substr(0, content_type.find(';'));
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
    for (char & c : t) c = (char) std::tolower((unsigned char) c);
    return t;
}

// The host name of a Host header value ("[::1]:8080" -> "::1", "a.b:80" -> "a.b"), lower-case.
inline std::string host_name(const std::string & host_header) {
    std::string h = host_header;
    if (!h.empty() && h[0] == '[') {
        const size_t end = h.find(']');
        h = end == std::string::npos ? h : h.substr(1, end - 1);
    } else if (auto colon = h.rfind(':'); colon != std::string::npos && h.find(':') == colon) {
        h = h.substr(0, colon);
    }
    for (char & c : h) c = (char) std::tolower((unsigned char) c);
    return h;
}

struct server::impl {
    impl(assistant & door, api_keys k, server_params pp);
    bool auth_on() const { return !keys.empty() || store_keys; }

    // Per-user quotas from the store (muse users quota): false, with the 429 sent, when the
    // user is over one. A passing request is counted against requests per minute.
    bool within_quota(const std::string & user, http::response & res);
    // After a request: its tokens count against the user's tokens per day.
    void charge_tokens(const std::string & user, int64_t tokens);
    std::mutex                                                       quota_mu;
    std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> recent;  // user -> request times, last minute

    assistant &     asst;  // the one door of every chat
    backend &       be;    // the assistant's: caps and stats
    api_keys        keys;
    server_params   params;
    // (db_err and store_keys before db: db's initializer sets them)
    error           db_err;            // why the store did not open (start() fails with it)
    bool            store_keys = false;  // users with keys in the store: authentication is on
    std::unique_ptr<store> db;         // the data directory's store (params.data_dir), or null
    file_store      files;
    admission       adm;
    server_metrics  met;
    http::server    svr;
    std::thread     sampler;
    cancel_source     sampler_stop;
    // Notified when a handler ends or a request leaves the HTTP layer: a drain waits on it.
    std::mutex              idle_mu;
    std::condition_variable idle_cv;
    void idle_changed() {
        std::lock_guard<std::mutex> lk(idle_mu);
        idle_cv.notify_all();
    }
    std::atomic<bool> draining{ false };
    std::atomic<bool> cancelling{ false };  // past the grace period: running requests are cancelled
    cancel_source     cancel_all;           // stopped with `cancelling`: every request_cancel follows
    std::atomic<int>  handlers{ 0 };        // handlers running (any route)
    bool            started = false;
    clock_type::time_point t_start = clock_type::now();

    // One request's cancellation: stopped the moment its client leaves or the server cancels
    // what runs (the end of a drain's grace period), whichever comes first.
    struct request_cancel {
        request_cancel(const cancel_token & client_gone, const cancel_token & server_cancel)
            : on_gone(client_gone, [this] { src.request_stop(); }), on_server(server_cancel, [this] { src.request_stop(); }) {}
        cancel_token token() const { return src.get_token(); }

        cancel_source   src;  // first: the callbacks below may run in their constructors
        cancel_callback on_gone, on_server;
    };

    void routes();        // the hooks, then each group:
    void routes_chat();   // routes-chat.cpp
    void routes_files();  // routes-files.cpp
    void routes_conversations();  // routes-conversations.cpp
    void routes_privacy();        // routes-conversations.cpp: export and erase of the caller's data
    void routes_admin();          // routes-conversations.cpp: /v1/admin/users
    void routes_responses();      // routes-responses.cpp
    void handle_response(http::request & req, http::response & res);
    void routes_info();   // routes-info.cpp: models, health, metrics, the web chat
    void routes_assets(); // routes-assets.cpp: the web chat's libraries, fonts and icon
    // Wraps a handler so that a drain can tell when the last one ended.
    http::handler counted(http::handler h);
    bool on_headers(http::request & req, http::response & res);
    bool host_allowed(const http::request & req) const;
    bool origin_allowed(const http::request & req, const std::string & origin) const;
    bool authorized(const http::request & req, http::response & res, std::string & user) const;
    void handle_chat(http::request & req, http::response & res);
    bool take_turn(http::request & req, http::response & res, const cancel_token & stop);
    bool chat_input(const http::request & req, http::response & res, chat_api_request & in, ask_input & ai);
    void count_chat(const ask_output & out, bool cancelled, clock_type::time_point t0);
    // A streamed answer: the response becomes an event stream whose status and headers go out
    // now (the handler must not touch `res` after this); the client leaving cancels `stop`.
    std::shared_ptr<http::stream> open_event_stream(http::request & req, http::response & res,
                                                    const std::shared_ptr<request_cancel> & stop);
    // The first token of a request (its first delta): counted once for /metrics' TTFT.
    void first_token(std::atomic<bool> & seen, clock_type::time_point t0) {
        if (seen.exchange(true)) return;
        met.ttft_count++;
        met.ttft_us += (uint64_t) std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
    }
    void handle_file_upload(http::request & req, http::response & res);
    std::string metrics_text();
    api_error fetch_image(const std::string & url, std::string & bytes, std::string & name);
    ojson file_json(const stored_file & f) const;
};

}  // namespace muse
