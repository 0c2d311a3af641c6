#include "remote-backend.h"

#include "core/base64.h"
#include "core/media.h"
#include "core/utf8.h"

#include <png.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <deque>
#include <thread>

namespace muse {

using json = nlohmann::json;

namespace {

// Bytes of one event-stream line, and of an error body, kept at most (a server that sends an
// endless line is cut off rather than filling memory).
constexpr size_t k_max_line  = 8u << 20;
constexpr size_t k_max_error = 64u << 10;

struct endpoint {
    std::string origin;  // http://host:port
    std::string prefix;  // the path before /v1 ("" or "/something")
};

bool parse_url(const std::string & url, endpoint & out, std::string & why) {
    if (url.rfind("https://", 0) == 0) {
        why = "https:// backends need TLS, which this build does not have: use http:// on a trusted network or through a tunnel";
        return false;
    }
    if (url.rfind("http://", 0) != 0) {
        why = "the backend URL must start with http:// (e.g. http://127.0.0.1:8081), got '" + utf8_head(url, 100) + "'";
        return false;
    }
    const size_t start = 7;
    const size_t slash = url.find('/', start);
    out.origin         = url.substr(0, slash);
    if (out.origin.size() <= start) {
        why = "the backend URL names no host: '" + utf8_head(url, 100) + "'";
        return false;
    }
    std::string path = slash == std::string::npos ? "" : url.substr(slash);
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);
    out.prefix = path;
    return true;
}

error unavailable(const std::string & what) { return { ERROR_UNAVAILABLE, what }; }

// An error from the server's status and body ({"error": {"message"}} as OpenAI and llama-server send).
error status_error(const std::string & origin, int status, const std::string & body) {
    std::string msg;
    const json  j = json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error")) {
        const json & e = j["error"];
        msg = e.is_object() ? e.value("message", "") : e.is_string() ? e.get<std::string>() : "";
    }
    if (msg.empty()) msg = utf8_head(body, 300);
    const std::string what = "the backend " + origin + " answered HTTP " + std::to_string(status) + ": " + msg;
    if (status == 400 && (msg.find("context") != std::string::npos || msg.find("too long") != std::string::npos)) {
        return { ERROR_CONTEXT_OVERFLOW, what };
    }
    if (status == 400 || status == 422) return { ERROR_INVALID_ARGUMENT, what };
    if (status == 401 || status == 403) return { ERROR_INTERNAL, what + " (check --backend-key)" };
    if (status == 404) return { ERROR_INTERNAL, what + " (is it an OpenAI-compatible server, and is the model right?)" };
    return unavailable(what);
}

finish_reason finish_from(const std::string & s) {
    if (s == "stop") return FINISH_STOP;
    if (s == "length") return FINISH_LENGTH;
    if (s == "tool_calls" || s == "function_call") return FINISH_TOOL_CALLS;
    return FINISH_STOP;
}

}  // namespace

std::string validate(const remote_params & p) {
    endpoint    e;
    std::string why;
    if (!parse_url(p.url, e, why)) return why;
    if (p.connect_timeout_s < 1 || p.connect_timeout_s > 600) return "the backend's connect timeout must be in [1, 600] seconds";
    if (p.read_timeout_s < 1 || p.read_timeout_s > 3600) return "the backend's read timeout must be in [1, 3600] seconds";
    if (p.n_ctx < 0 || p.n_ctx > (1 << 22)) return "the backend's context must be in [0, 4194304] tokens (0: ask the server)";
    if (p.max_idle < 0 || p.max_idle > 1024) return "the backend's idle connections must be in [0, 1024]";
    if (p.api_key.find_first_of("\r\n") != std::string::npos) return "the backend key has a line break";
    return {};
}

// An image as PNG bytes (libpng, into memory): what every OpenAI-compatible server reads.
static bool encode_png(const media & img, std::string & out) {
    out.clear();
    if (img.width <= 0 || img.height <= 0 || img.rgb.size() != (size_t) img.width * (size_t) img.height * 3) return false;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    if (!png) return false;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : nullptr);
        out.clear();
        return false;
    }
    png_set_write_fn(
        png, &out, [](png_structp p, png_bytep data, png_size_t n) { static_cast<std::string *>(png_get_io_ptr(p))->append((const char *) data, n); },
        nullptr);
    png_set_IHDR(png, info, (png_uint_32) img.width, (png_uint_32) img.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 3);  // fast: the bytes cross a local network once
    png_write_info(png, info);
    for (int32_t y = 0; y < img.height; ++y) png_write_row(png, img.rgb.data() + (size_t) y * (size_t) img.width * 3);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return true;
}

std::string remote_request_body(const chat_request & req, const std::string & model, error & err) {
    json msgs = json::array();
    for (const auto & m : req.messages) {
        json o = { { "role", m.role }, { "content", m.content } };
        if (!m.images.empty()) {
            // OpenAI's content parts: the pictures first, then the text (as the local engine
            // places them).
            json parts = json::array();
            for (const auto & img : m.images) {
                std::string bytes;
                if (!img || !encode_png(*img, bytes)) {
                    err = { ERROR_INVALID_ARGUMENT, "an image (" + (img ? img->source : std::string("none")) + ") could not be encoded for the remote server" };
                    return {};
                }
                parts.push_back({ { "type", "image_url" }, { "image_url", { { "url", "data:image/png;base64," + base64_encode(bytes) } } } });
            }
            if (!m.content.empty()) parts.push_back({ { "type", "text" }, { "text", m.content } });
            o["content"] = std::move(parts);
        }
        if (!m.tool_calls.empty()) {
            json calls = json::array();
            for (const auto & c : m.tool_calls) {
                calls.push_back({ { "id", c.id }, { "type", "function" }, { "function", { { "name", c.name }, { "arguments", c.arguments } } } });
            }
            o["tool_calls"] = calls;
        }
        if (!m.tool_call_id.empty()) o["tool_call_id"] = m.tool_call_id;
        if (!m.name.empty()) o["name"] = m.name;
        msgs.push_back(std::move(o));
    }
    json b = { { "messages", msgs }, { "stream", true }, { "stream_options", { { "include_usage", true } } } };
    if (!model.empty()) b["model"] = model;
    const sampling_params & s = req.sampling;
    b["temperature"]          = std::max(0.0f, s.temperature);
    b["top_p"]                = s.top_p;
    b["top_k"]                = std::max(0, s.top_k);
    b["min_p"]                = s.min_p;
    if (s.repeat_penalty != 1.0f) b["repeat_penalty"] = s.repeat_penalty;
    if (s.frequency_penalty != 0.0f) b["frequency_penalty"] = s.frequency_penalty;
    if (s.presence_penalty != 0.0f) b["presence_penalty"] = s.presence_penalty;
    if (s.seed != 0xFFFFFFFFu) b["seed"] = s.seed;
    if (req.max_tokens > 0) b["max_tokens"] = req.max_tokens;
    if (!req.stop.empty()) b["stop"] = req.stop;
    if (req.logprobs) b["logprobs"] = true;
    if (!req.cache_salt.empty()) b["cache_salt"] = req.cache_salt;  // vLLM's; others ignore it
    if (req.reasoning == REASONING_OFF) b["chat_template_kwargs"] = { { "enable_thinking", false } };
    // Budget forcing on the server: llama-server closes the reasoning after this many tokens
    // (for templates with thinking tags); servers that do not know the field ignore it, and
    // max_tokens still bounds the whole answer.
    if (req.reasoning != REASONING_OFF && req.reasoning_budget >= 0) b["thinking_budget_tokens"] = req.reasoning_budget;
    if (!req.json_schema.empty()) {
        const json schema = json::parse(req.json_schema, nullptr, false);
        if (schema.is_discarded()) {
            err = { ERROR_INVALID_ARGUMENT, "json_schema is not valid JSON" };
            return {};
        }
        b["response_format"] = { { "type", "json_schema" }, { "json_schema", { { "name", "answer" }, { "schema", schema } } } };
    } else if (!req.grammar.empty()) {
        b["grammar"] = req.grammar;  // llama-server's
    }
    if (!req.tools.empty()) {
        json tools = json::array();
        for (const auto & t : req.tools) {
            json params = t.parameters.empty() ? json({ { "type", "object" }, { "properties", json::object() } })
                                               : json::parse(t.parameters, nullptr, false);
            if (params.is_discarded()) {
                err = { ERROR_INVALID_ARGUMENT, "tool '" + t.name + "': parameters is not valid JSON" };
                return {};
            }
            tools.push_back({ { "type", "function" }, { "function", { { "name", t.name }, { "description", t.description }, { "parameters", params } } } });
        }
        b["tools"]       = tools;
        b["tool_choice"] = req.tool_choice;
    }
    return b.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- the backend ------------------------------------------------------------------------------

struct remote_backend::impl {
    remote_params params;
    endpoint      ep;
    std::string   model;   // what the server serves (and is asked for)
    int32_t       n_ctx = 4096;
    bool          vision = false;  // the server takes images as pictures
    bool          tools  = true;   // its chat template renders tools
    std::string   meta;    // caps().meta_json

    std::mutex                                    pool_mu;
    std::vector<std::unique_ptr<httplib::Client>> idle;  // kept-alive connections

    // llama-server refuses log-probabilities in a streamed request with tools; once it has said
    // so, such requests go without them (the vote then counts one ballot per agent).
    std::atomic<bool> logprobs_with_tools{ true };

    std::atomic<uint64_t> next_id{ 1 };
    std::atomic<int64_t>  n_requests{ 0 }, n_errors{ 0 }, n_cancelled{ 0 }, in_flight{ 0 };

    httplib::Headers headers() const {
        httplib::Headers h;
        if (!params.api_key.empty()) h.emplace("Authorization", "Bearer " + params.api_key);
        return h;
    }
    std::unique_ptr<httplib::Client> take() {
        {
            std::lock_guard<std::mutex> lk(pool_mu);
            if (!idle.empty()) {
                auto c = std::move(idle.back());
                idle.pop_back();
                return c;
            }
        }
        auto c = std::make_unique<httplib::Client>(ep.origin);
        c->set_keep_alive(true);
        c->set_connection_timeout(params.connect_timeout_s, 0);
        c->set_read_timeout(params.read_timeout_s, 0);
        c->set_write_timeout(params.read_timeout_s, 0);
        return c;
    }
    void give_back(std::unique_ptr<httplib::Client> c) {
        std::lock_guard<std::mutex> lk(pool_mu);
        if ((int32_t) idle.size() < params.max_idle) idle.push_back(std::move(c));
    }
};

namespace {

// One streamed request: a thread reads the event stream into a queue that next() drains.
class remote_stream : public chat_stream {
  public:
    remote_stream(std::shared_ptr<remote_backend::impl> b, uint64_t id, std::string body, bool logprobs) :
        be(std::move(b)), sid(id), want_logprobs(logprobs) {
        be->n_requests++;
        be->in_flight++;
        client = be->take();
        worker = std::thread([this, body = std::move(body)] { run(body); });
    }
    // A request refused before it was sent.
    remote_stream(uint64_t id, error err) : sid(id) {
        chat_event ev;
        ev.type   = chat_event::DONE;
        ev.finish = FINISH_ERROR;
        ev.err    = std::move(err);
        q.push_back(std::move(ev));
        ended = true;
    }
    // A request answered without the server.
    remote_stream(uint64_t id, chat_event done) : sid(id) {
        q.push_back(std::move(done));
        ended = true;
    }
    ~remote_stream() override {
        cancel();
        if (worker.joinable()) worker.join();
    }

    uint64_t id() const override { return sid; }

    bool next(chat_event & ev) override {
        if (delivered_done) return false;
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return !q.empty(); });
        ev = std::move(q.front());
        q.pop_front();
        if (ev.type == chat_event::DONE) delivered_done = true;
        return true;
    }

    void cancel() override {
        if (cancelled.exchange(true)) return;
        std::lock_guard<std::mutex> lk(client_mu);
        if (client && !ended) client->stop();  // closes the socket: the server stops generating
    }

  private:
    void push(chat_event ev) {
        std::lock_guard<std::mutex> lk(mu);
        q.push_back(std::move(ev));
        cv.notify_one();
    }

    void finish(finish_reason f, error err) {
        if (cancelled && f != FINISH_ERROR) f = FINISH_CANCELLED;
        if (cancelled && err) {  // the error is the cancellation's own
            f   = FINISH_CANCELLED;
            err = {};
        }
        chat_event ev;
        ev.type   = chat_event::DONE;
        ev.finish = f;
        ev.err    = std::move(err);
        ev.use    = use;
        if (f == FINISH_ERROR) be->n_errors++;
        if (f == FINISH_CANCELLED) be->n_cancelled++;
        be->in_flight--;
        push(std::move(ev));
    }

    // One `data:` payload of the event stream.
    void on_data(const std::string & data) {
        if (data == "[DONE]") {
            saw_done = true;
            return;
        }
        const json j = json::parse(data, nullptr, false);
        if (!j.is_object()) return;  // a comment or keep-alive the server sent as data
        if (j.contains("error")) {
            const json & e = j["error"];
            stream_err     = { ERROR_UNAVAILABLE, "the backend " + be->ep.origin + " failed mid-answer: " +
                                                   (e.is_object() ? e.value("message", std::string("unknown error")) : e.dump()) };
            return;
        }
        if (j.contains("usage") && j["usage"].is_object()) {
            const json & u          = j["usage"];
            use.prompt_tokens       = u.value("prompt_tokens", 0);
            use.completion_tokens   = u.value("completion_tokens", 0);
            int32_t cached          = 0;
            if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object()) {
                cached = u["prompt_tokens_details"].value("cached_tokens", 0);
            }
            if (j.contains("timings") && j["timings"].is_object()) {  // llama-server's own account
                cached = std::max(cached, j["timings"].value("cache_n", 0));
            }
            use.prompt_tokens_reused    = std::min(cached, use.prompt_tokens);
            use.prompt_tokens_prefilled = use.prompt_tokens - use.prompt_tokens_reused;
        }
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
        const json & c = j["choices"][0];
        if (c.contains("delta") && c["delta"].is_object()) {
            const json & d = c["delta"];
            std::vector<float> lps;
            if (want_logprobs && c.contains("logprobs") && c["logprobs"].is_object() && c["logprobs"].contains("content") &&
                c["logprobs"]["content"].is_array()) {
                for (const auto & t : c["logprobs"]["content"]) {
                    if (t.is_object() && t.contains("logprob") && t["logprob"].is_number()) lps.push_back(t["logprob"].get<float>());
                }
            }
            auto text_event = [&](chat_event::type_t type, const char * key) {
                if (d.contains(key) && d[key].is_string() && !d[key].get_ref<const std::string &>().empty()) {
                    chat_event ev = chat_event::delta(type, d[key].get<std::string>());
                    ev.logprobs   = std::move(lps);
                    lps.clear();
                    push(std::move(ev));
                }
            };
            text_event(chat_event::REASONING, "reasoning_content");
            text_event(chat_event::CONTENT, "content");
            if (d.contains("tool_calls") && d["tool_calls"].is_array()) {
                for (const auto & t : d["tool_calls"]) {
                    if (!t.is_object()) continue;
                    chat_event ev;
                    ev.type            = chat_event::TOOL_CALL;
                    ev.tool_call_index = std::max(0, std::min(t.value("index", 0), 63));
                    if (t.contains("id") && t["id"].is_string()) ev.tool_call.id = t["id"];
                    if (t.contains("function") && t["function"].is_object()) {
                        const json & f = t["function"];
                        if (f.contains("name") && f["name"].is_string()) ev.tool_call.name = f["name"];
                        if (f.contains("arguments") && f["arguments"].is_string()) ev.tool_call.arguments = f["arguments"];
                    }
                    push(std::move(ev));
                }
            }
            if (!lps.empty()) {  // log-probabilities of tokens that brought no text yet
                chat_event ev = chat_event::delta(chat_event::CONTENT, "");
                ev.logprobs   = std::move(lps);
                push(std::move(ev));
            }
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) fin = finish_from(c["finish_reason"]);
    }

    void run(const std::string & body) {
        std::string line, raw;
        bool        too_long = false;
        auto        receive  = [&](const char * data, size_t n) {
            if (cancelled) return false;
            if (raw.size() < k_max_error) raw.append(data, std::min(n, k_max_error - raw.size()));
            for (size_t i = 0; i < n; ++i) {
                const char ch = data[i];
                if (ch == '\n') {
                    if (!line.empty() && line.back() == '\r') line.pop_back();
                    if (line.rfind("data:", 0) == 0) {
                        on_data(line.compare(0, 6, "data: ") == 0 ? line.substr(6) : line.substr(5));
                    }
                    line.clear();
                } else if (line.size() < k_max_line) {
                    line.push_back(ch);
                } else {
                    too_long = true;
                    return false;
                }
            }
            return true;
        };
        const std::string path = be->ep.prefix + "/v1/chat/completions";
        httplib::Result   r    = client->Post(path, be->headers(), body, "application/json", receive);
        if (r && r->status == 400 && raw.find("logprobs") != std::string::npos && body.find("\"logprobs\":true") != std::string::npos &&
            body.find("\"tools\":") != std::string::npos && !cancelled) {
            // Refused before a token was streamed: the same request again, without them.
            be->logprobs_with_tools = false;
            json j = json::parse(body);
            j.erase("logprobs");
            raw.clear();
            line.clear();
            r = client->Post(path, be->headers(), j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", receive);
        }
        {
            std::lock_guard<std::mutex> lk(client_mu);
            ended = true;
        }
        if (cancelled) {
            client.reset();  // a stopped connection is not reused
            return finish(FINISH_CANCELLED, {});
        }
        if (too_long) {
            client.reset();
            return finish(FINISH_ERROR, unavailable("the backend " + be->ep.origin + " sent an event over " +
                                                    std::to_string(k_max_line >> 20) + " MiB"));
        }
        if (!r) {
            client.reset();
            return finish(FINISH_ERROR, unavailable("the backend " + be->ep.origin + " could not be reached or stopped answering (" +
                                                    httplib::to_string(r.error()) + ")"));
        }
        if (r->status != 200) {
            be->give_back(std::move(client));
            return finish(FINISH_ERROR, status_error(be->ep.origin, r->status, raw));
        }
        be->give_back(std::move(client));
        if (stream_err) return finish(FINISH_ERROR, stream_err);
        if (!saw_done && fin == FINISH_NONE) {
            return finish(FINISH_ERROR, unavailable("the backend " + be->ep.origin + " ended the answer without finishing it"));
        }
        finish(fin == FINISH_NONE ? FINISH_STOP : fin, {});
    }

    std::shared_ptr<remote_backend::impl> be;
    uint64_t                              sid;
    bool                                  want_logprobs = false;

    std::mutex                       client_mu;
    std::unique_ptr<httplib::Client> client;
    bool                             ended = false;  // the request returned (client_mu)
    std::atomic<bool>                cancelled{ false };
    std::thread                      worker;

    // The reader thread's own state.
    usage         use;
    finish_reason fin      = FINISH_NONE;
    bool          saw_done = false;
    error         stream_err;

    std::mutex              mu;
    std::condition_variable cv;
    std::deque<chat_event>  q;
    bool                    delivered_done = false;  // the reader's
};

}  // namespace

remote_backend::remote_backend(std::shared_ptr<impl> i) : d(std::move(i)) {}
remote_backend::~remote_backend() = default;

std::unique_ptr<remote_backend> remote_backend::connect(const remote_params & p, error & err) {
    if (std::string why = validate(p); !why.empty()) {
        err = { ERROR_INVALID_ARGUMENT, why };
        return nullptr;
    }
    auto d    = std::make_shared<impl>();
    d->params = p;
    std::string why;
    parse_url(p.url, d->ep, why);
    auto cli = d->take();

    auto r = cli->Get(d->ep.prefix + "/v1/models", d->headers());
    if (!r) {
        err = unavailable("the backend " + d->ep.origin + " cannot be reached (" + httplib::to_string(r.error()) + "); is it running?");
        return nullptr;
    }
    if (r->status != 200) {
        err = status_error(d->ep.origin, r->status, r->body);
        if (err.code != ERROR_INTERNAL) err.code = ERROR_UNAVAILABLE;
        return nullptr;
    }
    const json models = json::parse(r->body, nullptr, false);
    std::vector<std::string> ids;
    if (models.is_object() && models.contains("data") && models["data"].is_array()) {
        for (const auto & m : models["data"]) {
            if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"]);
        }
    }
    if (p.model.empty()) {
        if (ids.empty()) {
            err = unavailable("the backend " + d->ep.origin + " lists no model at /v1/models");
            return nullptr;
        }
        d->model = ids.front();
    } else {
        if (std::find(ids.begin(), ids.end(), p.model) == ids.end()) {
            std::string list;
            for (const auto & i : ids) list += (list.empty() ? "" : ", ") + i;
            err = { ERROR_INVALID_ARGUMENT, "the backend " + d->ep.origin + " does not serve '" + p.model + "' (it serves: " + list + ")" };
            return nullptr;
        }
        d->model = p.model;
    }

    // The context: given, or llama-server's (per slot), or a cautious default; whether it sees
    // images: given, or llama-server's modalities.
    d->n_ctx  = p.n_ctx;
    d->vision = p.vision == 1;
    {
        // llama-server's /props (others answer 404, and the defaults stand).
        auto pr = cli->Get(d->ep.prefix + "/props", d->headers());
        if (pr && pr->status == 200) {
            const json props = json::parse(pr->body, nullptr, false);
            if (d->n_ctx == 0 && props.is_object() && props.contains("default_generation_settings") &&
                props["default_generation_settings"].is_object()) {
                const json & n = props["default_generation_settings"]["n_ctx"];
                if (n.is_number_integer() && n.get<int64_t>() > 0 && n.get<int64_t>() <= (1 << 22)) d->n_ctx = (int32_t) n.get<int64_t>();
            }
            if (p.vision < 0 && props.is_object() && props.contains("modalities") && props["modalities"].is_object()) {
                d->vision = props["modalities"].value("vision", false) == true;
            }
            // A chat template that cannot render tools: no tools are offered (as for a local
            // model), so the server never parses its output for tool calls.
            if (props.is_object() && props.contains("chat_template_caps") && props["chat_template_caps"].is_object() &&
                props["chat_template_caps"].value("supports_tools", true) == false) {
                d->tools = false;
            }
        }
        if (d->n_ctx <= 0) d->n_ctx = 4096;
    }
    d->give_back(std::move(cli));
    d->meta = json({ { "backend", "remote" }, { "url", d->ep.origin + d->ep.prefix }, { "model", d->model }, { "n_ctx", d->n_ctx },
                     { "vision", d->vision }, { "tools", d->tools } }).dump();
    return std::unique_ptr<remote_backend>(new remote_backend(std::move(d)));
}

std::unique_ptr<chat_stream> remote_backend::start(const chat_request & req) {
    const uint64_t id = d->next_id++;
    // The same request checks as the local backend, so every front end sees the same errors.
    error err = check_request(req, false);
    if (!err && req.max_tokens == 0) {
        // Prefill only (a prefix the agents would fork): a remote shares prefixes through its own
        // prompt cache when the agents' requests arrive, so there is nothing to send.
        d->n_requests++;
        chat_event done;
        done.type   = chat_event::DONE;
        done.finish = FINISH_LENGTH;
        return std::make_unique<remote_stream>(id, std::move(done));
    }
    std::string body;
    if (!err) {
        chat_request sent = req;
        if (!req.tools.empty() && !d->logprobs_with_tools) sent.logprobs = false;
        body = remote_request_body(sent, d->model, err);
    }
    if (err) {
        d->n_requests++;
        d->n_errors++;
        return std::make_unique<remote_stream>(id, std::move(err));
    }
    return std::make_unique<remote_stream>(d, id, std::move(body), req.logprobs);
}

backend_caps remote_backend::caps() const {
    backend_caps c;
    c.name             = "remote";
    c.model            = d->model + " at " + d->ep.origin;
    c.fork             = false;
    c.reasoning        = true;   // the server's template decides; reasoning_content is passed on
    c.vision           = d->vision;  // else images go as their OCR text
    c.grammar          = true;   // response_format json_schema
    c.logprobs         = true;
    c.tools            = d->tools;
    c.n_ctx            = d->n_ctx;
    c.max_prompt_bytes = (size_t) d->n_ctx * 16;  // no tokenizer here: a generous bound per token
    c.meta_json        = d->meta;
    return c;
}

error remote_backend::health() const {
    httplib::Client cli(d->ep.origin);
    cli.set_connection_timeout(d->params.connect_timeout_s, 0);
    cli.set_read_timeout(d->params.connect_timeout_s, 0);
    for (const char * path : { "/health", "/v1/models" }) {
        auto r = cli.Get(d->ep.prefix + path, d->headers());
        if (!r) return unavailable("the backend " + d->ep.origin + " cannot be reached (" + httplib::to_string(r.error()) + ")");
        if (r->status == 200) return {};
        if (r->status != 404) return unavailable("the backend " + d->ep.origin + " answered its health check with HTTP " + std::to_string(r->status));
    }
    return unavailable("the backend " + d->ep.origin + " has neither /health nor /v1/models");
}

std::vector<backend_metric> remote_backend::stats() const {
    return {
        { "muse_remote_requests_total", "counter", "Requests sent to the remote backend", (double) d->n_requests },
        { "muse_remote_errors_total", "counter", "Remote requests that ended in an error", (double) d->n_errors },
        { "muse_remote_cancelled_total", "counter", "Remote requests cancelled (their connection closed)", (double) d->n_cancelled },
        { "muse_remote_in_flight", "gauge", "Remote requests streaming now", (double) d->in_flight },
    };
}

}  // namespace muse
