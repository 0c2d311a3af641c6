#include "server.h"

#include "core/random.h"

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "perception/attachments.h"
#include "server/web-assets.h"

#include <httplib.h>

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

namespace muse {

using json = nlohmann::json;

std::string validate(const server_params & p) {
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

void send_error(httplib::Response & res, const api_error & e) {
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

// Requests running and waiting: at most `parallel` run, at most `queue` wait in arrival order.
class admission {
  public:
    admission(int parallel, int queue) : parallel(parallel), queue_cap(queue) {}

    enum result { ADMITTED, FULL, GONE, DRAINING };

    result acquire(const std::function<bool()> & gone) {
        std::unique_lock<std::mutex> lk(mu);
        if (draining) return DRAINING;
        if (active < parallel && order.empty()) {
            active++;
            return ADMITTED;
        }
        if ((int) order.size() >= queue_cap) return FULL;
        const uint64_t ticket = next_ticket++;
        order.push_back(ticket);
        for (;;) {
            if (order.front() == ticket && active < parallel) {
                order.pop_front();
                active++;
                cv.notify_all();
                return ADMITTED;
            }
            if (gone()) {
                order.remove(ticket);
                cv.notify_all();
                return GONE;
            }
            cv.wait_for(lk, std::chrono::milliseconds(100));
        }
    }

    void release(double seconds) {
        std::lock_guard<std::mutex> lk(mu);
        active--;
        avg_s = avg_s <= 0 ? seconds : 0.8 * avg_s + 0.2 * seconds;
        cv.notify_all();
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
    const int               parallel, queue_cap;
    mutable std::mutex      mu;
    std::condition_variable cv;
    int                     active = 0;
    std::list<uint64_t>     order;
    uint64_t                next_ticket = 0;
    double                  avg_s = 0;
    bool                    draining = false;
};

// One chat request between the HTTP thread and the threads that run it.
struct chat_job {
    std::atomic<bool>       stop{ false };
    std::mutex              mu;
    std::condition_variable cv;
    std::string             out;  // SSE bytes not yet written
    bool                    finished = false;
    std::atomic<bool>       first_token{ false };
    std::vector<ask_result> results;
    api_error               err;
    std::thread             driver;

    ~chat_job() {
        if (driver.joinable()) {
            driver.join();
        }
    }
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

std::string route_label(const std::string & path) {
    for (const char * r : { "/v1/chat/completions", "/v1/models", "/health", "/metrics" }) {
        if (path == r) return r;
    }
    if (path == "/chat/completions") return "/v1/chat/completions";
    if (path == "/models") return "/v1/models";
    if (path == "/v1/files" || path == "/files") return "/v1/files";
    if (path.rfind("/v1/files/", 0) == 0) return "/v1/files/{id}";
    if (path == "/" || path == "/index.html") return "/";
    return "other";
}

std::string bearer_token(const httplib::Request & req) {
    std::string h = req.get_header_value("Authorization");
    if (h.size() > 7 && (h.compare(0, 7, "Bearer ") == 0 || h.compare(0, 7, "bearer ") == 0)) {
        h = h.substr(7);
        while (!h.empty() && h.front() == ' ') h.erase(h.begin());
        while (!h.empty() && h.back() == ' ') h.pop_back();
        return h;
    }
    return req.get_header_value("X-Api-Key");
}

}  // namespace

struct server::impl {
    impl(engine & e, backend & b, api_keys k, server_params pp) :
        eng(e), be(b), keys(std::move(k)), params(std::move(pp)), files(params.files), adm(params.parallel, params.queue) {}

    engine &        eng;
    backend &       be;
    api_keys        keys;
    server_params   params;
    file_store      files;
    admission       adm;
    server_metrics  met;
    httplib::Server svr;
    std::thread     listener;
    std::thread     sampler;
    std::atomic<bool> sampler_stop{ false };
    std::atomic<bool> draining{ false };
    int32_t         bound_port = 0;
    clock_type::time_point t_start = clock_type::now();

    std::mutex                             jobs_mu;
    std::set<std::shared_ptr<chat_job>>    jobs;

    void routes();
    bool authorized(const httplib::Request & req, httplib::Response & res, std::string & user);
    void handle_chat(const httplib::Request & req, httplib::Response & res);
    void handle_file_upload(const httplib::Request & req, httplib::Response & res);
    std::string metrics_text();
    api_error fetch_image(const std::string & url, std::string & bytes, std::string & name);
    ojson file_json(const stored_file & f) const;
};

bool server::impl::authorized(const httplib::Request & req, httplib::Response & res, std::string & user) {
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

void server::impl::handle_chat(const httplib::Request & req, httplib::Response & res) {
    std::string user;
    if (!authorized(req, res, user)) return;
    const auto t0 = clock_type::now();

    auto in = std::make_shared<chat_api_request>();
    if (api_error e = parse_chat_body(req.body, params.limits, *in)) {
        send_error(res, e);
        return;
    }

    // Images and uploaded files: checked now, so that bad input never takes a turn.
    auto att = std::make_shared<attachments>();
    for (size_t i = 0; i < in->image_urls.size(); ++i) {
        const std::string & url = in->image_urls[i];
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
    }
    for (const auto & id : in->file_ids) {
        stored_file f;
        if (!files.get(user, id, f)) {
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

    // A turn on the engine.
    std::shared_ptr<chat_job> job = std::make_shared<chat_job>();
    switch (adm.acquire([&] { return req.is_connection_closed(); })) {
        case admission::ADMITTED: break;
        case admission::FULL: {
            met.rejected++;
            res.set_header("Retry-After", std::to_string(adm.retry_after()));
            send_error(res, make_error(429, "the server is busy: " + std::to_string(params.parallel) + " requests running and " +
                                                std::to_string(params.queue) + " waiting; retry after the Retry-After seconds",
                                       "rate_limit_error", "server_busy"));
            return;
        }
        case admission::DRAINING:
            res.set_header("Retry-After", "5");
            send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
            return;
        case admission::GONE:
            met.cancelled++;
            res.status = 499;
            return;
    }
    {
        std::lock_guard<std::mutex> lk(jobs_mu);
        jobs.insert(job);
    }

    const std::string id      = "chatcmpl-" + random_hex(24);
    const int64_t     created = unix_now();
    const std::string model   = params.model_id;
    auto builder = std::make_shared<chunk_builder>(id, created, model, in->n);
    const bool stream = in->stream;

    auto push = [job](const std::vector<ojson> & chunks) {
        std::string s;
        for (const auto & c : chunks) {
            s += "data: " + wire(c) + "\n\n";
        }
        std::lock_guard<std::mutex> lk(job->mu);
        job->out += s;
        job->cv.notify_all();
    };
    if (stream) {
        push(builder->start());
    }

    job->driver = std::thread([this, job, in, att, reg, builder, push, stream, t0] {
        const int n = in->n;
        job->results.resize(n);
        std::vector<std::thread> runs;
        std::mutex               build_mu;  // the builder is shared by the choices
        auto run_choice = [&](int i) {
            ask_request r = in->ask;
            if (n > 1 && r.opt.sampling.seed != 0xFFFFFFFF) {
                r.opt.sampling.seed += (uint32_t) i;
            }
            orchestrator orch(be, *reg);
            ask_sink sink = [&, i](const ask_event & ev) {
                if (ev.type == ask_event::AGENT_DELTA && !job->first_token.exchange(true)) {
                    met.ttft_count++;
                    met.ttft_us += (uint64_t) std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
                }
                if (!stream) return;
                std::vector<ojson> chunks;
                {
                    std::lock_guard<std::mutex> lk(build_mu);
                    chunks = builder->event(i, ev);
                }
                push(chunks);
            };
            job->results[i] = orch.run(r, sink, &job->stop);
        };
        for (int i = 1; i < n; ++i) {
            runs.emplace_back(run_choice, i);
        }
        run_choice(0);
        for (auto & t : runs) t.join();

        bool cancelled = job->stop.load();
        const ask_result * failed = nullptr;
        for (const auto & r : job->results) {
            met.prompt_tokens += (uint64_t) (r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused);
            met.completion_tokens += (uint64_t) r.use.completion_tokens;
            if (r.err && !failed) failed = &r;
            std::lock_guard<std::mutex> lk(met.mu);
            met.modes[ask_mode_name(r.mode)]++;
        }
        if (cancelled) {
            met.cancelled++;
        }
        const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        met.request_us += (uint64_t) (secs * 1e6);
        met.chat_done++;
        adm.release(secs);

        std::vector<ojson> tail;
        if (failed && !cancelled) {
            job->err = result_error(failed->err);
        }
        if (stream) {
            std::string s;
            if (job->err) {
                s += "data: " + wire(error_json(job->err)) + "\n\n";
            } else {
                const ojson read = att->empty() ? ojson() : att->to_json();
                for (int i = 0; i < n; ++i) {
                    for (auto & c : builder->finish(i, job->results[i])) {
                        if (!read.is_null() && c.contains("muse") && c["muse"].value("event", "") == "done") {
                            c["muse"]["result"]["attachments"] = read;
                        }
                        s += "data: " + wire(c) + "\n\n";
                    }
                }
                if (in->include_usage) s += "data: " + wire(builder->usage(job->results)) + "\n\n";
            }
            s += "data: [DONE]\n\n";
            std::lock_guard<std::mutex> lk(job->mu);
            job->out += s;
        }
        std::lock_guard<std::mutex> lk(job->mu);
        job->finished = true;
        job->cv.notify_all();
    });

    auto forget = [this, job] {
        if (job->driver.joinable()) job->driver.join();
        std::lock_guard<std::mutex> lk(jobs_mu);
        jobs.erase(job);
    };

    if (!stream) {
        for (;;) {
            std::unique_lock<std::mutex> lk(job->mu);
            if (job->cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return job->finished; })) break;
            lk.unlock();
            if (req.is_connection_closed()) job->stop = true;  // the client left: cancel its sequences
        }
        forget();
        if (job->err) {
            send_error(res, job->err);
            return;
        }
        ojson out = completion_json(id, created, model, job->results);
        if (!att->empty()) {
            // What the model read for each image and table (OCR text, table summary).
            const ojson read = att->to_json();
            if (out.contains("muse")) {
                out["muse"]["attachments"] = read;
            } else {
                for (auto & c : out["choices"]) c["muse"]["attachments"] = read;
            }
        }
        res.set_content(wire(out), "application/json");
        return;
    }

    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [job](size_t, httplib::DataSink & sink) {
            std::string chunk;
            bool        fin = false;
            {
                std::unique_lock<std::mutex> lk(job->mu);
                job->cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return !job->out.empty() || job->finished; });
                chunk.swap(job->out);
                fin = job->finished;
            }
            if (!chunk.empty()) {
                if (!sink.write(chunk.data(), chunk.size())) {
                    job->stop = true;
                    return false;
                }
            } else if (!sink.is_writable()) {
                job->stop = true;  // the client left: cancel its sequences at the next engine step
                return false;
            }
            if (fin) {
                sink.done();
            }
            return true;
        },
        [job, forget](bool success) {
            if (!success) job->stop = true;
            forget();
        });
}

void server::impl::handle_file_upload(const httplib::Request & req, httplib::Response & res) {
    std::string user;
    if (!authorized(req, res, user)) return;
    if (!req.form.has_file("file")) {
        send_error(res, bad_request("file", "send the file as multipart/form-data with a `file` part (and `purpose`)"));
        return;
    }
    const httplib::FormData part = req.form.get_file("file");
    stored_file f;
    f.user     = user;
    f.filename = normalize_file_name(part.filename);
    f.purpose  = req.form.has_field("purpose") ? normalize_file_name(req.form.get_field("purpose"), 64) : "user_data";
    const bool is_image = !image_format(part.content).empty();
    f.kind              = is_image ? "image" : "table";
    f.format            = is_image ? "" : table_format_for(f.filename);  // an image's comes from decoding
    // Check it now, so that a broken file is refused at upload and not in a later chat.
    error e;
    if (f.kind == "image") {
        image img;
        e = load_image_bytes(f.filename, part.content, image_limits{}, img);
        if (!e) f.format = img.format;
    } else {
        table_store ts;
        table_info  ti;
        e = ts.load_bytes(f.filename, part.content, f.format, ti);
        if (!e) f.format = ti.format;
    }
    if (e) {
        send_error(res, bad_request("file", e.message));
        return;
    }
    f.bytes = std::make_shared<const std::string>(part.content);
    if (error pe = files.put(f)) {
        send_error(res, make_error(pe.message.find("full") != std::string::npos ? 507 : 400, pe.message));
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
    metric("muse_uptime_seconds", "gauge", "Seconds since the server started.",
           std::chrono::duration<double>(clock_type::now() - t_start).count());
    return out;
}

void server::impl::routes() {
    svr.set_payload_max_length(params.max_body);
    // Errors that httplib answers itself (413, 404, 400) get OpenAI's error shape too.
    svr.set_error_handler([](const httplib::Request & req, httplib::Response & res) {
        if (!res.body.empty()) return;
        std::string msg = httplib::status_message(res.status);
        if (res.status == 413) msg = "request body too large: send smaller images or split the request";
        if (res.status == 404) msg = "no route " + req.method + " " + req.path + " (see GET /v1/models, POST /v1/chat/completions)";
        res.set_content(wire(error_json(make_error(res.status, msg, res.status >= 500 ? "server_error" : "invalid_request_error"))),
                        "application/json");
    });
    svr.set_exception_handler([](const httplib::Request &, httplib::Response & res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception & e) {
            what = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        send_error(res, make_error(500, what, "server_error"));
    });
    svr.set_logger([this](const httplib::Request & req, const httplib::Response & res) {
        met.count(route_label(req.path), res.status);
        if (params.log_requests && req.path != "/health" && req.path != "/metrics") {
            fprintf(stderr, "%s %s %s %d\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(), res.status);
        }
    });
    svr.set_pre_routing_handler([](const httplib::Request & req, httplib::Response & res) {
        res.set_header("Access-Control-Allow-Origin", req.get_header_value("Origin").empty() ? "*" : req.get_header_value("Origin"));
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
        res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        if (req.method == "OPTIONS") {
            res.status = 204;
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Authentication before a body is read: a request without a key never makes the server
    // buffer its upload.
    svr.set_pre_request_handler([this](const httplib::Request & req, httplib::Response & res) {
        if (req.path == "/health" || keys.empty()) {
            return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string user;
        if (authorized(req, res, user)) {
            return httplib::Server::HandlerResponse::Unhandled;
        }
        if (params.web && (req.path == "/" || req.path == "/index.html")) {
            // A browser cannot send a key when it opens the page: it gets the 401 with the page
            // itself as the body, which holds no data and asks for the key for its API calls.
            res.set_content(reinterpret_cast<const char *>(web_index_html), web_index_html_len, "text/html; charset=utf-8");
        }
        return httplib::Server::HandlerResponse::Handled;
    });

    auto chat = [this](const httplib::Request & req, httplib::Response & res) { handle_chat(req, res); };
    svr.Post("/v1/chat/completions", chat);
    svr.Post("/chat/completions", chat);

    auto models = [this](const httplib::Request & req, httplib::Response & res) {
        std::string user;
        if (!authorized(req, res, user)) return;
        const model_info & mi = eng.get_model().info();
        ojson m = { { "id", params.model_id }, { "object", "model" }, { "created", unix_now() }, { "owned_by", "muse" },
                    { "meta", { { "architecture", mi.architecture }, { "description", mi.description }, { "n_params", mi.n_params },
                                { "n_ctx_train", mi.n_ctx_train }, { "n_ctx", eng.n_ctx() }, { "chat_template", mi.template_family },
                                { "reasoning", mi.supports_reasoning }, { "vision", mi.has_projector && mi.projector_vision } } } };
        res.set_content(wire(ojson({ { "object", "list" }, { "data", ojson::array({ m }) } })), "application/json");
    };
    svr.Get("/v1/models", models);
    svr.Get("/models", models);

    svr.Get("/health", [this](const httplib::Request &, httplib::Response & res) {
        if (draining) {
            res.status = 503;
            res.set_content(R"({"status":"draining"})", "application/json");
            return;
        }
        res.set_content(wire(ojson({ { "status", "ok" }, { "model", params.model_id }, { "running", adm.running() },
                                     { "queued", adm.waiting() } })), "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request & req, httplib::Response & res) {
        std::string user;
        if (!authorized(req, res, user)) return;
        res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });

    svr.Post("/v1/files", [this](const httplib::Request & req, httplib::Response & res) { handle_file_upload(req, res); });
    svr.Get("/v1/files", [this](const httplib::Request & req, httplib::Response & res) {
        std::string user;
        if (!authorized(req, res, user)) return;
        ojson data = ojson::array();
        for (const auto & f : files.list(user)) data.push_back(file_json(f));
        res.set_content(wire(ojson({ { "object", "list" }, { "data", data } })), "application/json");
    });
    svr.Get("/v1/files/:id", [this](const httplib::Request & req, httplib::Response & res) {
        std::string user;
        if (!authorized(req, res, user)) return;
        stored_file f;
        if (!files.get(user, req.path_params.at("id"), f)) {
            send_error(res, make_error(404, "no file '" + req.path_params.at("id") + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(file_json(f)), "application/json");
    });
    svr.Delete("/v1/files/:id", [this](const httplib::Request & req, httplib::Response & res) {
        std::string user;
        if (!authorized(req, res, user)) return;
        const std::string id = req.path_params.at("id");
        if (!files.remove(user, id)) {
            send_error(res, make_error(404, "no file '" + id + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(ojson({ { "id", id }, { "object", "file" }, { "deleted", true } })), "application/json");
    });

    if (params.web) {
        auto page = [](const httplib::Request &, httplib::Response & res) {
            res.set_content(reinterpret_cast<const char *>(web_index_html), web_index_html_len, "text/html; charset=utf-8");
        };
        svr.Get("/", page);
        svr.Get("/index.html", page);
    }
}

server::server(engine & eng, backend & be, api_keys keys, server_params params) :
    p(std::make_unique<impl>(eng, be, std::move(keys), std::move(params))) {}

server::~server() {
    shutdown(0);
}

int32_t server::port() const {
    return p->bound_port;
}

error server::start() {
    if (std::string e = validate(p->params); !e.empty()) {
        return { ERROR_INVALID_ARGUMENT, e };
    }
    p->routes();
    // Enough HTTP threads for every running and waiting request, plus a few for /health,
    // /metrics and requests that are refused at once.
    const size_t n_threads = (size_t) p->params.parallel + (size_t) p->params.queue + 8;
    p->svr.new_task_queue  = [n_threads] { return new httplib::ThreadPool(n_threads); };
    p->svr.set_keep_alive_max_count(1000);
    // httplib's default is SO_REUSEPORT, with which a second server on the same port starts
    // without a word and the kernel splits the connections between the two. SO_REUSEADDR
    // only: a busy port is an error the user sees.
    p->svr.set_socket_options([](socket_t sock) { httplib::set_socket_opt(sock, SOL_SOCKET, SO_REUSEADDR, 1); });
    p->svr.set_read_timeout(60);
    p->svr.set_write_timeout(60);
    if (p->params.port == 0) {
        p->bound_port = p->svr.bind_to_any_port(p->params.host);
        if (p->bound_port <= 0) {
            return { ERROR_INVALID_ARGUMENT, "cannot listen on " + p->params.host + " (any port)" };
        }
    } else {
        if (!p->svr.bind_to_port(p->params.host, p->params.port)) {
            return { ERROR_INVALID_ARGUMENT, "cannot listen on " + p->params.host + ":" + std::to_string(p->params.port) +
                                                 ": the port is in use or the address is not local (try --port)" };
        }
        p->bound_port = p->params.port;
    }
    p->listener = std::thread([this] { p->svr.listen_after_bind(); });
    p->sampler  = std::thread([this] {
        // Tokens per second over a sliding 10 s window, sampled once a second.
        std::vector<std::pair<clock_type::time_point, uint64_t>> samples;
        while (!p->sampler_stop) {
            samples.emplace_back(clock_type::now(), p->eng.stats().generated_tokens);
            if (samples.size() > 11) samples.erase(samples.begin());
            if (samples.size() >= 2) {
                const double dt = std::chrono::duration<double>(samples.back().first - samples.front().first).count();
                p->met.tokens_per_s = dt > 0 ? (double) (samples.back().second - samples.front().second) / dt : 0;
            }
            for (int i = 0; i < 10 && !p->sampler_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    });
    return {};
}

void server::shutdown(double grace_s) {
    if (!p->listener.joinable()) {
        return;
    }
    p->draining = true;
    p->adm.start_draining();
    p->svr.stop();  // no new connections; running handlers go on
    const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(grace_s));
    for (;;) {
        {
            std::lock_guard<std::mutex> lk(p->jobs_mu);
            if (p->jobs.empty() && p->adm.waiting() == 0) break;
            if (clock_type::now() >= deadline) {
                for (const auto & j : p->jobs) j->stop = true;  // past the grace period: cancel
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    p->listener.join();
    p->sampler_stop = true;
    if (p->sampler.joinable()) p->sampler.join();
}

}  // namespace muse
