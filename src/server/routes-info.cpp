// GET /v1/models, /v1/limits, /health, /metrics (Prometheus text) and the web chat.

#include "server-impl.h"

#include "app/safety-door.h"

#include "backend/backend.h"
#include "core/utf8.h"
#include "server/web-assets.h"

namespace muse {

void server::impl::routes_info() {
    // What a request may ask of this server: the ranges the chat parser enforces, narrowed by
    // `muse serve`'s caps, and the context that a prompt and its answer share, so that a front
    // end can refuse what the server would.
    auto limits = [this](const backend_caps & c) {
        ojson l = limits_json(params.limits);
        if (c.n_ctx > 0) l["context_tokens"] = c.n_ctx;
        return l;
    };
    auto models = counted([this, limits](http::request &, http::response & res) {
        const backend_caps c = be.caps();
        ojson meta = ojson::parse(c.meta_json, nullptr, false);
        if (!meta.is_object()) meta = ojson::object();
        meta["limits"] = limits(c);
        ojson m = { { "id", params.model_id }, { "object", "model" }, { "created", unix_now() }, { "owned_by", "muse" }, { "meta", meta } };
        res.set_content(wire(ojson({ { "object", "list" }, { "data", ojson::array({ m }) } })), "application/json");
    });
    svr.route("GET", "/v1/models", models);
    svr.route("GET", "/models", models);
    svr.route("GET", "/v1/limits", counted([this, limits](http::request &, http::response & res) {
        res.set_content(wire(limits(be.caps())), "application/json");
    }));
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

    if (params.web) {
        auto page = [](http::request &, http::response & res) {
            res.set_content(std::string(reinterpret_cast<const char *>(web_index_html), web_index_html_len), "text/html; charset=utf-8");
        };
        svr.route("GET", "/", page);
        svr.route("GET", "/index.html", page);
    }
}

std::string server::impl::metrics_text() {
    std::string out;
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
    std::vector<backend_metric> more = be.stats();
    if (asst.safety()) {
        for (auto & m : asst.safety()->stats()) more.push_back(std::move(m));
    }
    std::string described;  // the last series' name before its labels: HELP and TYPE once per name
    for (const auto & m : more) {
        const std::string base = m.name.substr(0, m.name.find('{'));
        if (base != described) out += "# HELP " + base + " " + m.help + "\n# TYPE " + base + " " + m.type + "\n";
        described = base;
        char v[64];
        snprintf(v, sizeof(v), " %.10g\n", m.value);
        out += m.name + v;
    }
    metric("muse_files_stored", "gauge", "Uploaded files kept.", (double) files.count());
    metric("muse_files_bytes", "gauge", "Bytes of uploaded files kept.", (double) files.total_bytes());
    metric("muse_http_connections_open", "gauge", "Client connections open (idle, arriving or being answered).", svr.open_connections());
    metric("muse_uptime_seconds", "gauge", "Seconds since the server started.",
           std::chrono::duration<double>(clock_type::now() - t_start).count());
    return out;
}

}  // namespace muse
