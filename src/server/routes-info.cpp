// GET /v1/models, /health, /metrics (Prometheus text) and the web chat.

#include "server-impl.h"

#include "engine/model.h"
#include "engine/text-stream.h"
#include "server/web-assets.h"

namespace muse {

void server::impl::routes_info() {
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

    if (params.web) {
        auto page = [](http::request &, http::response & res) {
            res.set_content(std::string(reinterpret_cast<const char *>(web_index_html), web_index_html_len), "text/html; charset=utf-8");
        };
        svr.route("GET", "/", page);
        svr.route("GET", "/index.html", page);
    }
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

}  // namespace muse
