#include "server-impl.h"

#include "app/safety-door.h"

#include "core/limits.h"
#include "core/utf8.h"
#include "server/web-assets.h"

#include <algorithm>
#include <cmath>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace muse {

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
    if (p.limits.max_images < 0 || p.limits.max_images > (int32_t) k_limit_images.max) {
        return "--max-images must be in [0, " + std::to_string((int32_t) k_limit_images.max) + "]";
    }
    return "";
}

assistant_params assistant_params_for(const server_params & p) {
    return assistant_params{ p.request_memory, p.limits.max_n };
}

// The store opens before admission is sized: its users with keys turn authentication on.
static std::unique_ptr<store> open_store(const server_params & p, error & err, bool & has_keys) {
    std::unique_ptr<store> st;
    has_keys = false;
    if (p.data_dir.empty() && p.db.empty()) return st;
    if ((err = open_data_store(p.data_dir, p.db, st))) return nullptr;
    int64_t n = 0;
    if ((err = st->count_keys(n))) return nullptr;
    has_keys = n > 0;
    return st;
}

server::impl::impl(assistant & door, api_keys k, server_params pp) :
    asst(door), be(door.get_backend()), keys(std::move(k)), params(std::move(pp)),
    db(open_store(params, db_err, store_keys)), files(params.files),
    adm(params.parallel, params.queue,
        params.user_slots > 0 ? params.user_slots
        : !auth_on()          ? params.parallel + params.queue  // one local user: the global caps
                              : params.parallel + params.queue / 2) {
    if (db) files.attach(db.get());
}

static int64_t utc_day(int64_t & seconds_left) {
    const int64_t now = (int64_t) std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    seconds_left = 86400 - now % 86400;
    return now / 86400;
}

bool server::impl::within_quota(const std::string & user, http::response & res) {
    if (!db) return true;
    std::string  id;
    quota_record q;
    if (files.user_id(user, id) || db->get_quota(id, q)) return true;  // a store fault is not the user's quota
    auto refuse = [&](int64_t retry, const std::string & msg) {
        res.set_header("Retry-After", std::to_string(std::max<int64_t>(1, retry)));
        send_error(res, make_error(429, msg, "rate_limit_error", "quota_exceeded"));
        return false;
    };
    if (q.tokens_per_day > 0) {
        int64_t left = 0, tokens = 0, requests = 0;
        const int64_t day = utc_day(left);
        if (!db->get_usage(id, day, tokens, requests) && tokens >= q.tokens_per_day) {
            return refuse(left, "your quota of " + std::to_string(q.tokens_per_day) + " tokens_per_day is used up (" +
                                    std::to_string(tokens) + " tokens today, UTC); it renews at midnight UTC, in the Retry-After seconds");
        }
    }
    if (q.requests_per_minute > 0 && db->shared()) {
        // Nodes sharing the store count in it: the quota holds across them (per calendar
        // minute, so a burst may straddle two minutes).
        const int64_t now_s   = (int64_t) std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
        bool          allowed = true;
        if (!db->take_request(id, now_s / 60, q.requests_per_minute, allowed) && !allowed) {
            return refuse(60 - now_s % 60, "your quota of " + std::to_string(q.requests_per_minute) +
                                               " requests_per_minute is reached; retry after the Retry-After seconds");
        }
    } else if (q.requests_per_minute > 0) {
        const auto                  now = std::chrono::steady_clock::now();
        std::lock_guard<std::mutex> lk(quota_mu);
        auto &                      times = recent[user];
        while (!times.empty() && now - times.front() >= std::chrono::seconds(60)) times.pop_front();
        if ((int64_t) times.size() >= q.requests_per_minute) {
            const auto wait = std::chrono::duration_cast<std::chrono::seconds>(times.front() + std::chrono::seconds(60) - now).count() + 1;
            return refuse(wait, "your quota of " + std::to_string(q.requests_per_minute) +
                                    " requests_per_minute is reached; retry after the Retry-After seconds");
        }
        times.push_back(now);
    }
    return true;
}

void server::impl::charge_tokens(const std::string & user, int64_t tokens) {
    if (!db || tokens <= 0) return;
    std::string id;
    int64_t     left = 0;
    if (files.user_id(user, id)) return;
    db->add_usage(id, utc_day(left), tokens, 1);
}

bool server::impl::authorized(const http::request & req, http::response & res, std::string & user) const {
    if (!auth_on()) {
        user = "local";
        return true;
    }
    const std::string key = bearer_token(req);
    bool              ok  = !key.empty() && keys.check(key, user);
    if (!ok && !key.empty() && db) {
        user_record u;
        const error e = db->find_user_by_key(key_digest(key), u);
        ok            = !e;
        if (ok) user = u.name;
        if (e && e.code != ERROR_NOT_FOUND) {
            // The store cannot say (its database is down): not the key's fault, retry later.
            res.set_header("Retry-After", "5");
            send_error(res, result_error(e));
            return false;
        }
    }
    if (!ok) {
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
    // Headers that say who asks, from where, and what the body is must be said once: with two,
    // one layer (a proxy, a check) may read one and another layer the other.
    for (const char * name : { "authorization", "x-api-key", "host", "origin", "content-type", "content-length" }) {
        int n = 0;
        for (const auto & h : req.headers) n += h.first == name ? 1 : 0;
        if (n > 1) {
            send_error(res, make_error(400, std::string("the request has ") + std::to_string(n) + " " + name + " headers: send one",
                                       "invalid_request_error", "duplicate_header"));
            return true;
        }
    }
    if (req.has_header("authorization") && req.has_header("x-api-key")) {
        send_error(res, make_error(400, "send the API key once: Authorization: Bearer KEY or X-Api-Key, not both",
                                   "invalid_request_error", "duplicate_credentials"));
        return true;
    }
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
    if (req.route == "/metrics" && auth_on()) {
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
    // The web chat's libraries and icon load with the page, before it can ask for a key.
    if (params.web && is_web_asset_route(req.route)) return false;
    if (!authorized(req, res, req.user)) {
        if (params.web && req.method == "GET" && (req.route == "/" || req.route == "/index.html")) {
            // A browser cannot send a key when it opens the page: it gets the 401 with the page
            // itself as the body, which holds no data and asks for the key for its API calls.
            res.set_content(std::string(reinterpret_cast<const char *>(web_index_html), web_index_html_len), "text/html; charset=utf-8");
        }
        return true;
    }
    // By the route matched, never by the path's spelling.
    const bool chat   = req.method == "POST" && (req.route == "/v1/chat/completions" || req.route == "/chat/completions" ||
                                               req.route == "/v1/responses");
    const bool upload = req.method == "POST" && (req.route == "/v1/files" || req.route == "/files");
    const bool json_post = req.method == "POST" && (req.route.rfind("/v1/conversations", 0) == 0 || req.route.rfind("/v1/admin/", 0) == 0);
    if ((chat || (json_post && !req.header("content-type").empty())) && media_type(req.header("content-type")) != "application/json") {
        send_error(res, make_error(415, "send the body as JSON with Content-Type: application/json (got '" +
                                            utf8_head(req.header("content-type"), 100) + "')", "invalid_request_error", "unsupported_media_type"));
        return true;
    }
    if (upload && media_type(req.header("content-type")) != "multipart/form-data") {
        send_error(res, make_error(415, "send the file as multipart/form-data with a `file` part (got Content-Type '" +
                                            utf8_head(req.header("content-type"), 100) + "')", "invalid_request_error", "unsupported_media_type"));
        return true;
    }
    if (chat && !within_quota(req.user, res)) {
        met.rejected++;
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
    svr.on_request_ended = [this] { idle_changed(); };
    svr.on_logged = [this](const http::request & req, const http::response & res) {
        met.count(route_label(req.route), res.status);
        if (params.log_requests && req.path != "/health" && req.path != "/metrics") {
            // The path as a client sent it: control characters would forge log lines.
            // Personal data in it (a search for an e-mail address) is redacted (--redact logs).
            std::string path = utf8_head(asst.safety() ? asst.safety()->for_log(req.path) : req.path, 200);
            for (char & c : path) {
                if ((unsigned char) c < 0x20 || c == 0x7f) c = '?';
            }
            fprintf(stderr, "%s %s %s %d\n", req.remote_addr.c_str(), req.method.c_str(), path.c_str(), res.status);
        }
    };
    routes_chat();
    routes_files();
    routes_conversations();
    routes_privacy();
    routes_admin();
    routes_responses();
    routes_info();
    routes_assets();
}

http::handler server::impl::counted(http::handler h) {
    return [this, h](http::request & req, http::response & res) {
        handlers++;
        struct done_t {
            impl & p;
            ~done_t() {
                p.handlers--;
                p.idle_changed();
            }
        } done{ *this };
        h(req, res);
        req.hold.reset();  // an admission ticket is free once the handler is done
    };
}

server::server(assistant & door, api_keys keys, server_params params) :
    p(std::make_unique<impl>(door, std::move(keys), std::move(params))) {}

server::~server() {
    shutdown(0);
}

int32_t server::port() const {
    return p->svr.port();
}

error server::start() {
    if (p->db_err) {
        return p->db_err;
    }
    if (std::string e = validate(p->params, p->auth_on()); !e.empty()) {
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
        const cancel_token           stop = p->sampler_stop.get_token();
        std::mutex                   mu;
        std::condition_variable_any  tick;
        while (!stop.stop_requested()) {
            double generated = 0;
            for (const auto & m : p->be.stats()) {
                if (m.name == "muse_engine_generated_tokens_total") generated = m.value;
            }
            samples.emplace_back(clock_type::now(), (uint64_t) generated);
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
            std::unique_lock<std::mutex> lk(mu);
            tick.wait_for(lk, stop, std::chrono::seconds(1), [] { return false; });  // a second, or the stop
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
        std::unique_lock<std::mutex> lk(p->idle_mu);
        return p->idle_cv.wait_until(lk, until, idle);
    };
    const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(grace_s));
    bool clean = wait_handlers(deadline);
    if (!clean) {
        // Past the grace period: cancel what runs; each stream ends with an error event.
        p->cancelling = true;
        p->cancel_all.request_stop();  // every request's request_cancel
        clean = wait_handlers(clock_type::now() + std::chrono::milliseconds(800));
    }
    p->sampler_stop.request_stop();
    if (p->sampler.joinable()) p->sampler.join();
    if (p->handlers.load() > 0) {
        return false;  // a handler is stuck in work that cannot be cancelled (the caller exits)
    }
    p->svr.stop();  // replies still unsent (a client that does not read) are cut
    return clean;
}

}  // namespace muse
