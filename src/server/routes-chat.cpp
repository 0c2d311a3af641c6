// POST /v1/chat/completions: admitted, parsed, attachments read, run on the orchestrator,
// answered whole or streamed (SSE).

#include "server-impl.h"

#include "core/random.h"

#include "backend/backend.h"
#include "perception/attachments.h"

#include <condition_variable>

namespace muse {

void server::impl::routes_chat() {
    auto chat = counted([this](http::request & req, http::response & res) { handle_chat(req, res); });
    svr.route("POST", "/v1/chat/completions", chat);
    svr.route("POST", "/chat/completions", chat);

}

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
        const backend_caps caps = be.caps();
        if (caps.max_prompt_bytes > 0 && text > caps.max_prompt_bytes) {
            send_error(res, make_error(400, "the messages (" + std::to_string(text) + " bytes of text) cannot fit the model's context of " +
                                                std::to_string(caps.n_ctx) + " tokens: shorten them (or start the server with a larger --ctx)",
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
        att->apply(in->ask, *reg, be.caps().vision);
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
        std::lock_guard<std::mutex> lk(stops_mu);
        stops.insert(stop);
        if (cancelling) *stop = true;
    }
    struct unregister {
        impl &                             s;
        std::shared_ptr<std::atomic<bool>> f;
        ~unregister() {
            std::lock_guard<std::mutex> lk(s.stops_mu);
            s.stops.erase(f);
        }
    } unreg{ *this, stop };

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

}  // namespace muse
