#include "server.h"

#include "core/random.h"

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/text-stream.h"
#include "perception/attachments.h"
#include "server/web-assets.h"

#include <httplib.h>  // the client that fetches allowed image URLs

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace muse {

using json = nlohmann::json;

bool is_loopback_host(const std::string & host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0 ||
           (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0);
}

std::string validate(const server_params & p, bool has_keys) {
    if (!has_keys && !p.insecure_no_auth && !is_loopback_host(p.host)) {
        return "refusing to listen on " + p.host + " without API keys: anyone who can reach it could use the model and "
               "read the uploaded files. Add --api-key KEY (or --api-key-file FILE), or --insecure-no-auth to accept that";
    }
    if (p.user_slots < 0 || p.user_slots > 8192) return "--user-slots must be in [0, 8192], got " + std::to_string(p.user_slots);
    if (p.request_memory < (1u << 20) || p.request_memory > ((size_t) 64 << 30)) return "--max-request-mb must be in [1, 65536]";
    for (const auto & o : p.allow_origins) {
        if (o != "*" && o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0) {
            return "--allow-origin must be an origin like https://app.example.com (scheme and host, no path) or *, got '" + o + "'";
        }
        if (o != "*" && o.find('/', o.find("//") + 2) != std::string::npos) {
            return "--allow-origin takes an origin without a path, got '" + o + "'";
        }
    }
    http::options t = p.transport;
    t.host = p.host;
    t.port = p.port;
    t.max_body = p.max_body;
    if (std::string e = http::validate(t); !e.empty()) return e;
    if (p.port < 0 || p.port > 65535) return "--port must be in [0, 65535], got " + std::to_string(p.port);
    if (p.parallel < 1 || p.parallel > 64) return "--parallel must be in [1, 64], got " + std::to_string(p.parallel);
    if (p.queue < 0 || p.queue > 4096) return "--queue must be in [0, 4096], got " + std::to_string(p.queue);
    if (p.max_body < 1024 || p.max_body > (size_t) 1 << 30) return "--max-body must be in [1 KiB, 1 GiB]";
    if (p.limits.max_tokens < 1 || p.limits.max_tokens > (1 << 20)) return "--max-tokens must be in [1, 1048576]";
    if (p.limits.default_max_tokens > p.limits.max_tokens) return "the default max_tokens is over --max-tokens";
    if (p.limits.max_agents < 1 || p.limits.max_agents > 16) return "--max-agents must be in [1, 16]";
    if (p.limits.max_images < 0 || p.limits.max_images > attachments::k_max_images) {
        return "--max-images must be in [0, " + std::to_string(attachments::k_max_images) + "]";
    }
    return "";
}

namespace {

using clock_type = std::chrono::steady_clock;

int64_t unix_now() {
    return (int64_t) std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// JSON for the wire: text that is not valid UTF-8 (a model's byte fallback cut mid-character,
// a tool's output) is replaced with U+FFFD instead of throwing on a thread with no handler.
std::string wire(const ojson & j) {
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

void send_error(http::response & res, const api_error & e) {
    res.status = e.status;
    res.set_content(wire(error_json(e)), "application/json");
}

api_error make_error(int status, std::string message, std::string type = "invalid_request_error", std::string code = "") {
    api_error e;
    e.status  = status;
    e.message = std::move(message);
    e.type    = std::move(type);
    e.code    = std::move(code);
    return e;
}

// Requests running and waiting. A request reserves its place from its headers (a ticket): at
// most parallel + queue tickets exist, and one user holds at most `user_cap`; beyond that it is
// refused before its body is read. Once its body is in, the ticket joins the queue, in order of
// arrival of complete requests, for one of `parallel` running slots (so a client that trickles
// its body holds a reservation, never a running slot). The ticket is released when the
// request ends, however it ends.
class admission {
  public:
    admission(int parallel, int queue, int user_cap) : parallel(parallel), queue_cap(queue), user_cap(user_cap) {}

    enum result { ADMITTED, FULL, USER_FULL, GONE, DRAINING };

    struct ticket {
        admission * a = nullptr;
        std::string user;
        uint64_t    id = 0;
        bool        queued  = false;
        bool        running = false;
        clock_type::time_point t_run;
        ~ticket() {
            if (a) a->leave(*this);
        }
    };

    std::shared_ptr<ticket> reserve(const std::string & user, result & why) {
        std::lock_guard<std::mutex> lk(mu);
        if (draining) {
            why = DRAINING;
            return nullptr;
        }
        if (reserved >= parallel + queue_cap) {
            why = FULL;
            return nullptr;
        }
        if (auto it = per_user.find(user); it != per_user.end() && it->second >= user_cap) {
            why = USER_FULL;
            return nullptr;
        }
        auto t  = std::make_shared<ticket>();
        t->a    = this;
        t->user = user;
        t->id   = next_ticket++;
        reserved++;
        per_user[user]++;
        why = ADMITTED;
        return t;
    }

    // Queues the ticket (its request has fully arrived) and blocks until its turn to run; GONE
    // when `gone` turns true first.
    result wait(ticket & t, const std::function<bool()> & gone) {
        std::unique_lock<std::mutex> lk(mu);
        if (!t.queued && !t.running) {
            order.push_back(t.id);
            t.queued = true;
        }
        for (;;) {
            if (t.running) return ADMITTED;
            if (order.front() == t.id && active < parallel) {
                order.pop_front();
                t.queued  = false;
                t.running = true;
                t.t_run   = clock_type::now();
                active++;
                cv.notify_all();
                return ADMITTED;
            }
            if (gone()) return GONE;
            cv.wait_for(lk, std::chrono::milliseconds(100));
        }
    }

    // Seconds until a turn is likely free: the queue ahead times the mean request time.
    int retry_after() const {
        std::lock_guard<std::mutex> lk(mu);
        const double s = std::max(1.0, avg_s) * (1.0 + (double) order.size() / parallel);
        return (int) std::clamp(std::ceil(s), 1.0, 120.0);
    }

    void start_draining() {
        std::lock_guard<std::mutex> lk(mu);
        draining = true;
    }

    int running() const { std::lock_guard<std::mutex> lk(mu); return active; }
    int waiting() const { std::lock_guard<std::mutex> lk(mu); return (int) order.size(); }

  private:
    void leave(ticket & t) {
        std::lock_guard<std::mutex> lk(mu);
        if (t.running) {
            active--;
            const double secs = std::chrono::duration<double>(clock_type::now() - t.t_run).count();
            avg_s = avg_s <= 0 ? secs : 0.8 * avg_s + 0.2 * secs;
        } else if (t.queued) {
            order.remove(t.id);
        }
        reserved--;
        if (--per_user[t.user] <= 0) per_user.erase(t.user);
        cv.notify_all();
    }

    const int                  parallel, queue_cap, user_cap;
    mutable std::mutex         mu;
    std::condition_variable    cv;
    int                        active   = 0;  // running
    int                        reserved = 0;  // tickets alive: arriving, queued or running
    std::list<uint64_t>        order;         // queued, in order
    std::map<std::string, int> per_user;
    uint64_t                   next_ticket = 0;
    double                     avg_s = 0;
    bool                       draining = false;
};

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
std::string route_label(const std::string & route) {
    if (route.empty()) return "other";
    std::string r = route.rfind("/v1/", 0) == 0 || route == "/" || route == "/index.html" || route == "/health" || route == "/metrics"
                        ? route : "/v1" + route;
    if (r == "/index.html") r = "/";
    if (const size_t c = r.find(":id"); c != std::string::npos) r.replace(c, 3, "{id}");
    return r;
}

std::string bearer_token(const http::request & req) {
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
bool equal_in_constant_time(const std::string & a, const std::string & b) {
    unsigned char d = 0;
    for (size_t i = 0; i < a.size(); ++i) d |= (unsigned char) (a[i] ^ b[i]);
    return d == 0;
}

// The media type of a Content-Type value, lower-case, without parameters.
std::string media_type(const std::string & content_type) {
    std::string t = content_type.substr(0, content_type.find(';'));
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
    for (char & c : t) c = (char) std::tolower((unsigned char) c);
    return t;
}

// The host name of a Host header value ("[::1]:8080" -> "::1", "a.b:80" -> "a.b"), lower-case.
std::string host_name(const std::string & host_header) {
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

}  // namespace

struct server::impl {
    impl(engine & e, backend & b, api_keys k, server_params pp) :
        eng(e), be(b), keys(std::move(k)), params(std::move(pp)), files(params.files),
        adm(params.parallel, params.queue,
            params.user_slots > 0 ? params.user_slots
            : keys.empty()        ? params.parallel + params.queue  // one local user: the global caps
                                  : params.parallel + params.queue / 2) {}

    engine &        eng;
    backend &       be;
    api_keys        keys;
    server_params   params;
    file_store      files;
    admission       adm;
    server_metrics  met;
    http::server    svr;
    std::thread     sampler;
    std::atomic<bool> sampler_stop{ false };
    std::atomic<bool> draining{ false };
    std::atomic<bool> cancelling{ false };  // past the grace period: running requests are cancelled
    std::atomic<int>  handlers{ 0 };        // handlers running (any route)
    bool            started = false;
    clock_type::time_point t_start = clock_type::now();

    void routes();
    bool on_headers(http::request & req, http::response & res);
    bool host_allowed(const http::request & req) const;
    bool origin_allowed(const http::request & req, const std::string & origin) const;
    bool authorized(const http::request & req, http::response & res, std::string & user) const;
    void handle_chat(http::request & req, http::response & res);
    void handle_file_upload(http::request & req, http::response & res);
    std::string metrics_text();
    api_error fetch_image(const std::string & url, std::string & bytes, std::string & name);
    ojson file_json(const stored_file & f) const;
};

bool server::impl::authorized(const http::request & req, http::response & res, std::string & user) const {
    if (keys.empty()) {
        user = "local";
        return true;
    }
    const std::string key = bearer_token(req);
    if (key.empty() || !keys.check(key, user)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, make_error(401, key.empty() ? "missing API key: send Authorization: Bearer KEY"
                                                    : "invalid API key", "authentication_error", "invalid_api_key"));
        return false;
    }
    return true;
}

// DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 reaches this server
// with `Host: evil.example`. Only names of this machine's loopback, the address the server
// listens on and --allow-host names are accepted.
bool server::impl::host_allowed(const http::request & req) const {
    if (!req.has_header("host")) return true;  // HTTP/1.0 without Host: no browser sends that
    const std::string h = host_name(req.header("host"));
    if (is_loopback_host(h) || h == host_name(params.host)) return true;
    for (const auto & a : params.allow_hosts) {
        if (a == "*" || host_name(a) == h) return true;
    }
    return false;
}

bool server::impl::origin_allowed(const http::request & req, const std::string & origin) const {
    // The server's own origin: the page it served (the web chat) calling its API.
    if (origin == "http://" + req.header("host")) return true;
    for (const auto & a : params.allow_origins) {
        if (a == "*" || a == origin) return true;
    }
    return false;
}

// Runs on the event thread with the headers only: refuses what must not cost a body read, a
// worker or a parse. Returns true when `res` answers the request.
bool server::impl::on_headers(http::request & req, http::response & res) {
    if (!host_allowed(req)) {
        send_error(res, make_error(403, "Host '" + utf8_head(req.header("host"), 200) +
                                            "' is not this server's name (DNS rebinding defence); start the server with "
                                            "--allow-host NAME to accept it", "invalid_request_error", "host_not_allowed"));
        return true;
    }
    const std::string origin = req.header("origin");
    if (!origin.empty()) {
        if (!origin_allowed(req, origin)) {
            send_error(res, make_error(403, "origin '" + utf8_head(origin, 200) + "' may not call this server from a browser; "
                                            "start it with --allow-origin " + utf8_head(origin, 200) + " to let it",
                                       "invalid_request_error", "origin_not_allowed"));
            return true;
        }
        res.set_header("Access-Control-Allow-Origin", origin);
        res.set_header("Vary", "Origin");
    }
    if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
        res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        res.content_type.clear();
        return true;
    }
    if (req.route == "/health") return false;
    if (draining) {
        res.set_header("Retry-After", "5");
        res.set_header("Connection", "close");
        send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        return true;
    }
    if (req.route == "/metrics" && !keys.empty()) {
        // Every user's counters: only for the operator's metrics key.
        const std::string key = bearer_token(req);
        if (!params.metrics_key.empty() && !key.empty() && key.size() == params.metrics_key.size() &&
            equal_in_constant_time(key, params.metrics_key)) {
            req.user = "metrics";
            return false;
        }
        std::string user;
        if (!authorized(req, res, user)) return true;
        send_error(res, make_error(403, params.metrics_key.empty()
                                            ? "/metrics shows every user's counters: start the server with --metrics-key KEY and send that key"
                                            : "/metrics needs the metrics key (--metrics-key), not a user's key",
                                   "permission_error", "metrics_key_required"));
        return true;
    }
    if (!authorized(req, res, req.user)) {
        if (params.web && req.method == "GET" && (req.route == "/" || req.route == "/index.html")) {
            // A browser cannot send a key when it opens the page: it gets the 401 with the page
            // itself as the body, which holds no data and asks for the key for its API calls.
            res.set_content(std::string(reinterpret_cast<const char *>(web_index_html), web_index_html_len), "text/html; charset=utf-8");
        }
        return true;
    }
    // By the route matched, never by the path's spelling.
    const bool chat   = req.method == "POST" && (req.route == "/v1/chat/completions" || req.route == "/chat/completions");
    const bool upload = req.method == "POST" && (req.route == "/v1/files" || req.route == "/files");
    if (chat && media_type(req.header("content-type")) != "application/json") {
        send_error(res, make_error(415, "send the body as JSON with Content-Type: application/json (got '" +
                                            utf8_head(req.header("content-type"), 100) + "')", "invalid_request_error", "unsupported_media_type"));
        return true;
    }
    if (upload && media_type(req.header("content-type")) != "multipart/form-data") {
        send_error(res, make_error(415, "send the file as multipart/form-data with a `file` part (got Content-Type '" +
                                            utf8_head(req.header("content-type"), 100) + "')", "invalid_request_error", "unsupported_media_type"));
        return true;
    }
    if (chat || upload) {
        // Admission from the headers: a refused request never has its body read.
        admission::result why;
        auto t = adm.reserve(req.user, why);
        if (!t) {
            met.rejected++;
            res.set_header("Retry-After", std::to_string(adm.retry_after()));
            res.set_header("Connection", "close");
            if (why == admission::DRAINING) {
                send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
            } else if (why == admission::USER_FULL) {
                send_error(res, make_error(429, "you have the most requests running or waiting that one user may have; retry after "
                                                "the Retry-After seconds", "rate_limit_error", "user_busy"));
            } else {
                send_error(res, make_error(429, "the server is busy: " + std::to_string(params.parallel) + " requests running and " +
                                                    std::to_string(params.queue) + " waiting; retry after the Retry-After seconds",
                                           "rate_limit_error", "server_busy"));
            }
            return true;
        }
        req.hold = t;
    }
    return false;
}

ojson server::impl::file_json(const stored_file & f) const {
    return { { "id", f.id }, { "object", "file" }, { "bytes", f.bytes->size() }, { "created_at", f.created_at },
             { "filename", f.filename }, { "purpose", f.purpose }, { "muse_kind", f.kind }, { "muse_format", f.format } };
}
api_error server::impl::fetch_image(const std::string & url, std::string & bytes, std::string & name) {
    const bool http  = url.rfind("http://", 0) == 0;
    const bool https = url.rfind("https://", 0) == 0;
    if (!http && !https) {
        return bad_request("image_url", "image_url must be a data: URI (data:image/png;base64,...) or an http(s) URL");
    }
    const size_t      start = http ? 7 : 8;
    const size_t      slash = url.find('/', start);
    const std::string hostport = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string       host = hostport;
    if (auto colon = host.rfind(':'); colon != std::string::npos) host = host.substr(0, colon);
    const bool allowed = std::find(params.image_hosts.begin(), params.image_hosts.end(), host) != params.image_hosts.end() ||
                         std::find(params.image_hosts.begin(), params.image_hosts.end(), hostport) != params.image_hosts.end();
    if (!allowed) {
        return bad_request("image_url", "remote image URLs are refused (host '" + host +
                                        "' is not allowed): send the image as a data: URI, or start the server with --allow-image-host " + host);
    }
    if (https) {
        return bad_request("image_url", "this build fetches http:// image URLs only (no TLS): send the image as a data: URI");
    }
    httplib::Client cli("http://" + hostport);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(15);
    const size_t cap = image_limits{}.max_bytes;
    bool         over = false;
    bytes.clear();
    auto r = cli.Get(slash == std::string::npos ? "/" : url.substr(slash), [&](const char * data, size_t n) {
        if (bytes.size() + n > cap) { over = true; return false; }
        bytes.append(data, n);
        return true;
    });
    if (over) return bad_request("image_url", url + ": the image is over " + std::to_string(cap) + " bytes");
    if (!r) return bad_request("image_url", url + ": could not fetch it (" + httplib::to_string(r.error()) + ")");
    if (r->status != 200) return bad_request("image_url", url + ": the host answered HTTP " + std::to_string(r->status));
    name = url;
    return {};
}

namespace {

// The stop flags of running chats, so that the end of the grace period can cancel them all.
struct stop_registry {
    std::mutex                                     mu;
    std::set<std::shared_ptr<std::atomic<bool>>>   flags;
};

stop_registry & stops() {
    static stop_registry r;
    return r;
}

}  // namespace

void server::impl::handle_chat(http::request & req, http::response & res) {
    const auto t0 = clock_type::now();
    auto * ticket = static_cast<admission::ticket *>(req.hold.get());
    if (!ticket) {
        send_error(res, make_error(500, "internal error: the request was not admitted", "server_error"));
        return;
    }
    // The turn: a queued request waits here with its body read but nothing of it parsed,
    // decoded or tokenised.
    if (adm.wait(*ticket, [&] { return req.client_gone() || cancelling.load(); }) != admission::ADMITTED) {
        met.cancelled++;
        if (cancelling) {
            send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        } else {
            res.status = 499;  // the client left while it waited
        }
        return;
    }

    auto in = std::make_shared<chat_api_request>();
    {
        const std::string body = std::move(req.body);
        req.body.clear();
        if (api_error e = parse_chat_body(body, params.limits, *in)) {
            send_error(res, e);
            return;
        }
    }
    {
        // A conversation whose text alone proves it cannot fit the context is refused before it is
        // rendered, tokenised or copied for the agents.
        size_t text = 0;
        for (const auto & m : in->ask.messages) text += m.content.size() + m.reasoning_content.size();
        if (text > eng.max_prompt_bytes()) {
            send_error(res, make_error(400, "the messages (" + std::to_string(text) + " bytes of text) cannot fit the model's context of " +
                                                std::to_string(eng.n_ctx()) + " tokens: shorten them (or start the server with a larger --ctx)",
                                       "invalid_request_error", "context_length_exceeded"));
            return;
        }
    }
    // One user's requests never reuse, nor learn the length of, another's cached prefixes.
    in->ask.cache_salt = scoped_cache_salt(req.user, in->ask.cache_salt);

    // Images and uploaded files, within the request's memory budget (checked from each image's
    // header before it is decoded).
    auto att = std::make_shared<attachments>(image_limits{}, table_limits{}, params.request_memory);
    for (size_t i = 0; i < in->image_urls.size(); ++i) {
        std::string url = std::move(in->image_urls[i]);
        error e;
        if (url.rfind("data:", 0) == 0) {
            e = att->add_image_data_uri(url);
        } else {
            std::string bytes, name;
            if (api_error fe = fetch_image(url, bytes, name)) {
                send_error(res, fe);
                return;
            }
            e = att->add_image_bytes(name, bytes);
        }
        if (e) {
            send_error(res, bad_request("image_url", "image " + std::to_string(i + 1) + ": " + e.message));
            return;
        }
        if (req.client_gone()) {
            res.status = 499;
            return;
        }
    }
    in->image_urls.clear();
    for (const auto & id : in->file_ids) {
        stored_file f;
        if (!files.get(req.user, id, f)) {
            send_error(res, make_error(404, "attachments: no file '" + id + "' (upload it with POST /v1/files)", "invalid_request_error", "file_not_found"));
            return;
        }
        error e = f.kind == "image" ? att->add_image_bytes(f.filename, *f.bytes) : att->add_table_bytes(f.filename, *f.bytes, f.format);
        if (e) {
            send_error(res, bad_request("attachments", id + ": " + e.message));
            return;
        }
    }
    auto reg = std::make_shared<tool_registry>(builtin_tools());
    if (!att->empty()) {
        const model_info & mi = eng.get_model().info();
        att->apply(in->ask, *reg, mi.has_projector && mi.projector_vision);
    }

    const std::string id      = "chatcmpl-" + random_hex(24);
    const int64_t     created = unix_now();
    const std::string model   = params.model_id;
    const int         n       = in->n;
    const bool        stream  = in->stream;
    chunk_builder     builder(id, created, model, n);
    std::mutex        build_mu;  // the builder is shared by the choices

    auto stop = std::make_shared<std::atomic<bool>>(false);
    {
        std::lock_guard<std::mutex> lk(stops().mu);
        stops().flags.insert(stop);
        if (cancelling) *stop = true;
    }
    struct unregister {
        std::shared_ptr<std::atomic<bool>> f;
        ~unregister() {
            std::lock_guard<std::mutex> lk(stops().mu);
            stops().flags.erase(f);
        }
    } unreg{ stop };

    std::shared_ptr<http::stream> out;
    auto send = [&](const std::vector<ojson> & chunks) {
        std::string s;
        for (const auto & c : chunks) s += "data: " + wire(c) + "\n\n";
        if (!s.empty() && !out->write(s)) *stop = true;  // the client left: cancel at the next engine step
    };
    if (stream) {
        out = std::make_shared<http::stream>();
        out->on_close = [stop](bool complete) {
            if (!complete) *stop = true;
        };
        res.stream = out;
        res.content_type = "text/event-stream";
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        req.commit();  // the status and headers go out now; the handler must not touch res after this
        send(builder.start());
    }

    std::vector<ask_result> results(n);
    std::atomic<bool>       first_token{ false };
    std::mutex              done_mu;
    std::condition_variable done_cv;
    int                     done = 0;
    auto run_choice = [&](int i) {
        try {
            ask_request r = in->ask;
            if (n > 1 && r.opt.sampling.seed != 0xFFFFFFFF) r.opt.sampling.seed += (uint32_t) i;
            orchestrator orch(be, *reg);
            ask_sink sink = [&, i](const ask_event & ev) {
                if (ev.type == ask_event::AGENT_DELTA && !first_token.exchange(true)) {
                    met.ttft_count++;
                    met.ttft_us += (uint64_t) std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
                }
                if (!stream) return;
                std::vector<ojson> chunks;
                {
                    std::lock_guard<std::mutex> lk(build_mu);
                    chunks = builder.event(i, ev);
                }
                send(chunks);
            };
            results[i] = orch.run(r, sink, stop.get());
        } catch (const std::exception & e) {
            results[i].err = { ERROR_INTERNAL, std::string("internal error: ") + e.what() };
        }
        std::lock_guard<std::mutex> lk(done_mu);
        done++;
        done_cv.notify_all();
    };
    std::vector<std::thread> runs;
    for (int i = 0; i < n; ++i) runs.emplace_back(run_choice, i);
    {
        // Wait, watching the client: one that leaves cancels its sequences.
        std::unique_lock<std::mutex> lk(done_mu);
        while (!done_cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return done == n; })) {
            if (!stream && req.client_gone()) *stop = true;
        }
    }
    for (auto & t : runs) t.join();
    // The work is done: the turn is free before the client can see the end and send its next.
    req.hold.reset();

    const bool cancelled = stop->load();
    const ask_result * failed = nullptr;
    for (const auto & r : results) {
        met.prompt_tokens += (uint64_t) (r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused);
        met.completion_tokens += (uint64_t) r.use.completion_tokens;
        if (r.err && !failed) failed = &r;
        std::lock_guard<std::mutex> lk(met.mu);
        met.modes[ask_mode_name(r.mode)]++;
    }
    if (cancelled) met.cancelled++;
    met.request_us += (uint64_t) (std::chrono::duration<double>(clock_type::now() - t0).count() * 1e6);
    met.chat_done++;

    api_error err;
    if (cancelled && cancelling) {
        err = make_error(503, "the server is shutting down: the answer was cut short", "server_error", "shutting_down");
    } else if (failed && !cancelled) {
        err = result_error(failed->err);
    }
    if (stream) {
        if (out->gone()) return;
        std::string s;
        if (err) {
            s += "data: " + wire(error_json(err)) + "\n\n";
        } else {
            const ojson read = att->empty() ? ojson() : att->to_json();
            for (int i = 0; i < n; ++i) {
                for (auto & c : builder.finish(i, results[i])) {
                    if (!read.is_null() && c.contains("muse") && c["muse"].value("event", "") == "done") {
                        c["muse"]["result"]["attachments"] = read;
                    }
                    s += "data: " + wire(c) + "\n\n";
                }
            }
            if (in->include_usage) s += "data: " + wire(builder.usage(results)) + "\n\n";
        }
        s += "data: [DONE]\n\n";
        out->write(s);
        out->finish();
        return;
    }
    if (cancelled && !cancelling) {
        res.status = 499;  // the client left: nobody reads this
        return;
    }
    if (err) {
        send_error(res, err);
        return;
    }
    ojson body = completion_json(id, created, model, results);
    if (!att->empty()) {
        // What the model read for each image and table (OCR text, table summary).
        const ojson read = att->to_json();
        if (body.contains("muse")) {
            body["muse"]["attachments"] = read;
        } else {
            for (auto & c : body["choices"]) c["muse"]["attachments"] = read;
        }
    }
    res.set_content(wire(body), "application/json");
}

void server::impl::handle_file_upload(http::request & req, http::response & res) {
    auto * ticket = static_cast<admission::ticket *>(req.hold.get());
    if (!ticket) {
        send_error(res, make_error(500, "internal error: the request was not admitted", "server_error"));
        return;
    }
    if (adm.wait(*ticket, [&] { return req.client_gone() || cancelling.load(); }) != admission::ADMITTED) {
        if (cancelling) {
            send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        } else {
            res.status = 499;
        }
        return;
    }
    std::vector<http::form_part> parts;
    if (error e = http::parse_multipart(req.body, req.header("content-type"), 16, parts)) {
        send_error(res, bad_request("file", e.message));
        return;
    }
    req.body.clear();
    req.body.shrink_to_fit();
    const http::form_part * file = nullptr;
    std::string purpose = "user_data";
    for (const auto & p : parts) {
        if (p.name == "file" && !file) file = &p;
        if (p.name == "purpose") purpose = p.data;
    }
    if (!file) {
        send_error(res, bad_request("file", "send the file as multipart/form-data with a `file` part (and `purpose`)"));
        return;
    }
    // Everything about the file is checked before anything is stored.
    stored_file f;
    f.user     = req.user;
    f.filename = normalize_file_name(file->filename);
    f.purpose  = normalize_file_name(purpose, 64);
    {
        size_t n_files = 0, n_bytes = 0;
        files.usage(req.user, n_files, n_bytes);
        const auto & lim = files.limits();
        if (n_files >= lim.max_files_per_user || n_bytes + file->data.size() > lim.max_bytes_per_user) {
            // Refused before the file is decoded or parsed.
            const std::string msg = n_files >= lim.max_files_per_user
                ? "file: you already have " + std::to_string(n_files) + " files stored, the limit per user; delete some (DELETE /v1/files/ID)"
                : "file: your files would take " + std::to_string(n_bytes + file->data.size()) + " bytes, over the limit of " +
                      std::to_string(lim.max_bytes_per_user) + " bytes per user; delete some (DELETE /v1/files/ID)";
            send_error(res, make_error(429, msg, "rate_limit_error", "file_quota_exceeded"));
            return;
        }
    }
    const bool is_image = !image_format(file->data).empty();
    f.kind              = is_image ? "image" : "table";
    f.format            = is_image ? "" : table_format_for(f.filename);  // an image's comes from decoding
    // Check it now, so that a broken file is refused at upload and not in a later chat.
    error e;
    if (f.kind == "image") {
        image_limits lim;
        lim.max_decode = std::min(lim.max_decode, params.request_memory);
        image img;
        e = load_image_bytes(f.filename, file->data, lim, img);
        if (!e) f.format = img.format;
    } else {
        table_store ts;
        table_info  ti;
        e = ts.load_bytes(f.filename, file->data, f.format, ti);
        if (!e) f.format = ti.format;
    }
    if (e) {
        send_error(res, bad_request("file", e.message));
        return;
    }
    f.bytes = std::make_shared<const std::string>(file->data);
    file_refusal why = file_refusal::NONE;
    if (error pe = files.put(f, &why)) {
        const int status = why == file_refusal::TOO_LARGE ? 413 : why == file_refusal::QUOTA ? 429 : why == file_refusal::FULL ? 507 : 400;
        send_error(res, make_error(status, pe.message, status == 429 ? "rate_limit_error" : status == 507 ? "server_error" : "invalid_request_error",
                                   status == 429 ? "file_quota_exceeded" : status == 507 ? "storage_full" : ""));
        return;
    }
    res.set_content(wire(file_json(f)), "application/json");
}
std::string server::impl::metrics_text() {
    const engine_stats st = eng.stats();
    std::string        out;
    auto metric = [&](const char * name, const char * type, const char * help, double v) {
        char buf[512];
        snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n%s %.10g\n", name, help, name, type, name, v);
        out += buf;
    };
    {
        std::lock_guard<std::mutex> lk(met.mu);
        out += "# HELP muse_requests_total HTTP requests answered, by route and status.\n# TYPE muse_requests_total counter\n";
        uint64_t errors = 0;
        for (const auto & [k, v] : met.requests) {
            out += "muse_requests_total{route=\"" + k.first + "\",code=\"" + std::to_string(k.second) + "\"} " + std::to_string(v) + "\n";
            errors += k.second >= 400 ? v : 0;
        }
        metric("muse_request_errors_total", "counter", "HTTP requests answered with a status of 400 or more.", (double) errors);
        out += "# HELP muse_chat_mode_total Chat completions (choices) by the mode that ran.\n# TYPE muse_chat_mode_total counter\n";
        for (const auto & [m, v] : met.modes) {
            out += "muse_chat_mode_total{mode=\"" + m + "\"} " + std::to_string(v) + "\n";
        }
    }
    metric("muse_requests_rejected_total", "counter", "Chat requests refused with 429 because the queue was full.", (double) met.rejected);
    metric("muse_requests_cancelled_total", "counter", "Chat requests cancelled because the client disconnected.", (double) met.cancelled);
    metric("muse_requests_running", "gauge", "Chat requests running on the engine.", adm.running());
    metric("muse_queue_depth", "gauge", "Chat requests waiting for a turn.", adm.waiting());
    metric("muse_prompt_tokens_total", "counter", "Prompt tokens of finished chat requests (prefilled and reused).", (double) met.prompt_tokens);
    metric("muse_completion_tokens_total", "counter", "Tokens generated for finished chat requests, all agents.", (double) met.completion_tokens);
    metric("muse_time_to_first_token_seconds_sum", "counter", "Time from request to first streamed token, summed.", met.ttft_us / 1e6);
    metric("muse_time_to_first_token_seconds_count", "counter", "Requests with a first token.", (double) met.ttft_count);
    metric("muse_chat_request_seconds_sum", "counter", "Chat request durations, summed.", met.request_us / 1e6);
    metric("muse_chat_request_seconds_count", "counter", "Chat requests finished.", (double) met.chat_done);
    metric("muse_generated_tokens_per_second", "gauge", "Engine tokens generated per second over the last 10 s.", met.tokens_per_s);
    metric("muse_engine_generated_tokens_total", "counter", "Tokens sampled by the engine.", (double) st.generated_tokens);
    metric("muse_engine_prefill_tokens_total", "counter", "Prompt tokens decoded by the engine.", (double) st.prefill_tokens);
    metric("muse_engine_decode_calls_total", "counter", "llama_decode calls.", (double) st.decode_calls);
    metric("muse_engine_batch_tokens_total", "counter", "Tokens passed to llama_decode, all calls (batch size = this / calls).", (double) st.batch_tokens);
    metric("muse_engine_batch_tokens_max", "gauge", "Most tokens in one llama_decode call.", (double) st.max_batch_tokens);
    metric("muse_engine_batch_sequences_max", "gauge", "Most sequences sampled in one call.", (double) st.max_batch_seqs);
    metric("muse_engine_multi_sequence_calls_total", "counter", "Calls that sampled two or more sequences.", (double) st.multi_seq_calls);
    metric("muse_engine_fast_sampled_sequences_total", "counter", "Sequences sampled by the fast top-k sampler.", (double) st.sequences_fast_sampled);
    metric("muse_engine_decode_seconds_total", "counter", "Time inside llama_decode.", st.decode_us / 1e6);
    metric("muse_engine_step_seconds_total", "counter", "Time of whole engine steps: batch building, decode, sampling, events.", st.step_us / 1e6);
    metric("muse_engine_live_sequences", "gauge", "Sequences alive in the engine.", st.live_sequences);
    metric("muse_engine_kv_full_total", "counter", "llama_decode calls that found the KV cache full.", (double) st.kv_full_events);
    metric("muse_prompt_cache_hits_total", "counter", "Sequences that started from a cached prompt.", (double) st.prompt_cache_hits);
    metric("muse_prompt_cache_tokens_reused_total", "counter", "Prompt tokens taken from the prompt cache.", (double) st.prompt_cache_tokens_reused);
    metric("muse_prompt_cache_entries", "gauge", "Finished prompts kept for reuse.", st.prompt_cache_entries);
    metric("muse_prompt_cache_cells", "gauge", "KV cells the prompt cache holds.", st.prompt_cache_cells);
    metric("muse_files_stored", "gauge", "Uploaded files kept.", (double) files.count());
    metric("muse_files_bytes", "gauge", "Bytes of uploaded files kept.", (double) files.total_bytes());
    metric("muse_http_connections_open", "gauge", "Client connections open (idle, arriving or being answered).", svr.open_connections());
    metric("muse_uptime_seconds", "gauge", "Seconds since the server started.",
           std::chrono::duration<double>(clock_type::now() - t_start).count());
    return out;
}

void server::impl::routes() {
    svr.on_headers = [this](http::request & req, http::response & res) { return on_headers(req, res); };
    svr.on_not_found = [](http::request & req, http::response & res) {
        std::string msg;
        if (res.status == 413) {
            msg = "request body too large: send smaller images or split the request";
        } else if (res.status == 405) {
            msg = req.method + " is not allowed on " + utf8_head(req.path, 200);
        } else if (res.status == 414) {
            msg = "the URL is too long";
        } else {
            res.status = 404;
            msg = "no route " + req.method + " " + utf8_head(req.path, 200) + " (see GET /v1/models, POST /v1/chat/completions)";
        }
        send_error(res, make_error(res.status, msg));
    };
    svr.on_exception = [](http::request &, http::response & res, const std::string & what) {
        send_error(res, make_error(500, what, "server_error"));
    };
    svr.on_logged = [this](const http::request & req, const http::response & res) {
        met.count(route_label(req.route), res.status);
        if (params.log_requests && req.path != "/health" && req.path != "/metrics") {
            // The path as a client sent it: control characters would forge log lines.
            std::string path = utf8_head(req.path, 200);
            for (char & c : path) {
                if ((unsigned char) c < 0x20 || c == 0x7f) c = '?';
            }
            fprintf(stderr, "%s %s %s %d\n", req.remote_addr.c_str(), req.method.c_str(), path.c_str(), res.status);
        }
    };
    // Every handler counts itself, so that a drain knows when the last one ended.
    auto counted = [this](std::function<void(http::request &, http::response &)> h) {
        return [this, h](http::request & req, http::response & res) {
            handlers++;
            struct done_t {
                std::atomic<int> & n;
                ~done_t() { n--; }
            } done{ handlers };
            h(req, res);
            req.hold.reset();  // an admission ticket is free once the handler is done
        };
    };

    auto chat = counted([this](http::request & req, http::response & res) { handle_chat(req, res); });
    svr.route("POST", "/v1/chat/completions", chat);
    svr.route("POST", "/chat/completions", chat);

    auto models = counted([this](http::request &, http::response & res) {
        const model_info & mi = eng.get_model().info();
        ojson m = { { "id", params.model_id }, { "object", "model" }, { "created", unix_now() }, { "owned_by", "muse" },
                    { "meta", { { "architecture", mi.architecture }, { "description", mi.description }, { "n_params", mi.n_params },
                                { "n_ctx_train", mi.n_ctx_train }, { "n_ctx", eng.n_ctx() }, { "chat_template", mi.template_family },
                                { "reasoning", mi.supports_reasoning }, { "vision", mi.has_projector && mi.projector_vision } } } };
        res.set_content(wire(ojson({ { "object", "list" }, { "data", ojson::array({ m }) } })), "application/json");
    });
    svr.route("GET", "/v1/models", models);
    svr.route("GET", "/models", models);
    auto one_model = counted([this](http::request & req, http::response & res) {
        if (req.params.at("id") != params.model_id) {
            send_error(res, make_error(404, "no model '" + utf8_head(req.params.at("id"), 100) + "': this server serves '" + params.model_id + "'",
                                       "invalid_request_error", "model_not_found"));
            return;
        }
        res.set_content(wire(ojson({ { "id", params.model_id }, { "object", "model" }, { "created", unix_now() }, { "owned_by", "muse" } })),
                        "application/json");
    });
    svr.route("GET", "/v1/models/:id", one_model);
    svr.route("GET", "/models/:id", one_model);

    svr.route("GET", "/health", [this](http::request &, http::response & res) {
        if (draining) {
            res.status = 503;
            res.set_content(R"({"status":"draining"})", "application/json");
            return;
        }
        res.set_content(wire(ojson({ { "status", "ok" }, { "model", params.model_id }, { "running", adm.running() },
                                     { "queued", adm.waiting() } })), "application/json");
    });
    svr.route("GET", "/metrics", counted([this](http::request &, http::response & res) {
        res.set_content(metrics_text(), "text/plain; version=0.0.4");
    }));

    auto upload = counted([this](http::request & req, http::response & res) { handle_file_upload(req, res); });
    svr.route("POST", "/v1/files", upload);
    svr.route("POST", "/files", upload);
    auto list_files = counted([this](http::request & req, http::response & res) {
        ojson data = ojson::array();
        for (const auto & f : files.list(req.user)) data.push_back(file_json(f));
        res.set_content(wire(ojson({ { "object", "list" }, { "data", data } })), "application/json");
    });
    svr.route("GET", "/v1/files", list_files);
    svr.route("GET", "/files", list_files);
    auto get_file = counted([this](http::request & req, http::response & res) {
        stored_file f;
        if (!files.get(req.user, req.params.at("id"), f)) {
            send_error(res, make_error(404, "no file '" + utf8_head(req.params.at("id"), 100) + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(file_json(f)), "application/json");
    });
    svr.route("GET", "/v1/files/:id", get_file);
    svr.route("GET", "/files/:id", get_file);
    auto delete_file = counted([this](http::request & req, http::response & res) {
        const std::string id = req.params.at("id");
        if (!files.remove(req.user, id)) {
            send_error(res, make_error(404, "no file '" + utf8_head(id, 100) + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(ojson({ { "id", id }, { "object", "file" }, { "deleted", true } })), "application/json");
    });
    svr.route("DELETE", "/v1/files/:id", delete_file);
    svr.route("DELETE", "/files/:id", delete_file);

    if (params.web) {
        auto page = [](http::request &, http::response & res) {
            res.set_content(std::string(reinterpret_cast<const char *>(web_index_html), web_index_html_len), "text/html; charset=utf-8");
        };
        svr.route("GET", "/", page);
        svr.route("GET", "/index.html", page);
    }
}

server::server(engine & eng, backend & be, api_keys keys, server_params params) :
    p(std::make_unique<impl>(eng, be, std::move(keys), std::move(params))) {}

server::~server() {
    shutdown(0);
}

int32_t server::port() const {
    return p->svr.port();
}

error server::start() {
    if (std::string e = validate(p->params, !p->keys.empty()); !e.empty()) {
        return { ERROR_INVALID_ARGUMENT, e };
    }
    p->routes();
    http::options o = p->params.transport;
    o.host     = p->params.host;
    o.port     = p->params.port;
    o.max_body = p->params.max_body;
    // Every running and waiting request holds a worker; the rest answer at once.
    o.max_workers = p->params.parallel + p->params.queue + 32;
    if (error e = p->svr.start(o)) {
        return e;
    }
    p->started = true;
    p->sampler  = std::thread([this] {
        // Tokens per second over a sliding 10 s window, sampled once a second.
        std::vector<std::pair<clock_type::time_point, uint64_t>> samples;
        uint64_t ticks = 0;
        while (!p->sampler_stop) {
            samples.emplace_back(clock_type::now(), p->eng.stats().generated_tokens);
            if (samples.size() > 11) samples.erase(samples.begin());
            if (samples.size() >= 2) {
                const double dt = std::chrono::duration<double>(samples.back().first - samples.front().first).count();
                p->met.tokens_per_s = dt > 0 ? (double) (samples.back().second - samples.front().second) / dt : 0;
            }
#ifdef __GLIBC__
            // Give freed memory back to the system now and then (small blocks freed on worker
            // threads stay in their arenas otherwise).
            if (++ticks % 10 == 0) malloc_trim(0);
#endif
            for (int i = 0; i < 10 && !p->sampler_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    });
    return {};
}

bool server::shutdown(double grace_s) {
    if (!p->started) {
        return true;
    }
    p->started = false;
    p->draining = true;
    p->adm.start_draining();
    p->svr.stop_accepting();  // no new connections; requests still arriving are dropped
    auto wait_handlers = [&](clock_type::time_point until) {
        // Handlers ended and their replies sent to the end (a stream's last chunk and [DONE]).
        auto idle = [&] { return p->handlers.load() == 0 && p->svr.busy_requests() == 0; };
        while (!idle() && clock_type::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return idle();
    };
    const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(grace_s));
    bool clean = wait_handlers(deadline);
    if (!clean) {
        // Past the grace period: cancel what runs; each stream ends with an error event.
        p->cancelling = true;
        {
            std::lock_guard<std::mutex> lk(stops().mu);
            for (const auto & f : stops().flags) *f = true;
        }
        clean = wait_handlers(clock_type::now() + std::chrono::milliseconds(800));
    }
    p->sampler_stop = true;
    if (p->sampler.joinable()) p->sampler.join();
    if (p->handlers.load() > 0) {
        return false;  // a handler is stuck in work that cannot be cancelled (the caller exits)
    }
    p->svr.stop();  // replies still unsent (a client that does not read) are cut
    return clean;
}

}  // namespace muse
