// POST /v1/chat/completions: admitted, parsed, attachments read, run on the orchestrator,
// answered whole or streamed (SSE).

#include "server-impl.h"

#include "core/random.h"

#include "app/assistant.h"
#include "backend/backend.h"

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
    // Images and uploaded files as received: the assistant reads them within the request's
    // memory budget. Remote image URLs are fetched here, with the server's own client.
    ask_input ai;
    ai.session.user = req.user;
    ai.request      = std::move(in->ask);
    ai.n            = in->n;
    for (size_t i = 0; i < in->image_urls.size(); ++i) {
        attachment_input a;
        a.kind  = attachment_input::IMAGE;
        a.name  = "image " + std::to_string(i + 1);
        a.field = "image_url";
        if (in->image_urls[i].rfind("data:", 0) == 0) {
            a.bytes = std::move(in->image_urls[i]);
        } else {
            std::string name;
            if (api_error fe = fetch_image(in->image_urls[i], a.bytes, name)) {
                send_error(res, fe);
                return;
            }
        }
        ai.attachments.push_back(std::move(a));
    }
    in->image_urls.clear();
    for (const auto & fid : in->file_ids) {
        stored_file f;
        if (!files.get(req.user, fid, f)) {
            send_error(res, make_error(404, "attachments: no file '" + fid + "' (upload it with POST /v1/files)", "invalid_request_error", "file_not_found"));
            return;
        }
        attachment_input a;
        a.kind   = f.kind == "image" ? attachment_input::IMAGE : attachment_input::TABLE;
        a.name   = f.filename;
        a.shared = f.bytes;
        a.format = f.format;
        ai.attachments.push_back(std::move(a));
    }

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

    // The one door: the rules, the hooks, the attachments. A refusal is a status, before any
    // byte of a stream.
    prepared_ask prep;
    ask_refusal  why;
    if (error e = asst.prepare(std::move(ai), prep, &why, stop.get())) {
        if (e.code == ERROR_CONTEXT_OVERFLOW) {
            send_error(res, make_error(400, e.message, "invalid_request_error", "context_length_exceeded"));
        } else if (e.code == ERROR_INTERNAL) {
            send_error(res, make_error(500, e.message, "server_error"));
        } else if (e.code == ERROR_ENGINE_STOPPED) {
            if (cancelling) send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
            else res.status = 499;
        } else {
            send_error(res, bad_request(why.field == "json_schema" ? "response_format" : why.field, e.message));
        }
        return;
    }

    const std::string id      = "chatcmpl-" + random_hex(24);
    const int64_t     created = unix_now();
    const std::string model   = params.model_id;
    const int         n       = in->n;
    const bool        stream  = in->stream;
    chunk_builder     builder(id, created, model, n);
    std::mutex        build_mu;  // the builder is shared by the choices

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

    std::atomic<bool> first_token{ false };
    choice_sink sink = [&](int i, const ask_event & ev) {
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
    ask_output              result;
    std::mutex              done_mu;
    std::condition_variable done_cv;
    bool                    done = false;
    std::thread runner([&] {
        asst.run(prep, sink, stop.get(), result);
        std::lock_guard<std::mutex> lk(done_mu);
        done = true;
        done_cv.notify_all();
    });
    {
        // Wait, watching the client: one that leaves cancels its sequences.
        std::unique_lock<std::mutex> lk(done_mu);
        while (!done_cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return done; })) {
            if (!stream && req.client_gone()) *stop = true;
        }
    }
    runner.join();
    const std::vector<ask_result> & results = result.results;
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
            const ojson read = result.attachments.empty() ? ojson() : result.attachments;
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
    if (!result.attachments.empty()) {
        // What the model read for each image and table (OCR text, table summary).
        const ojson & read = result.attachments;
        if (body.contains("muse")) {
            body["muse"]["attachments"] = read;
        } else {
            for (auto & c : body["choices"]) c["muse"]["attachments"] = read;
        }
    }
    res.set_content(wire(body), "application/json");
}

}  // namespace muse
