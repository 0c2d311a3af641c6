// POST /v1/chat/completions: admitted, parsed, handed to the assistant (the one door), answered
// whole or streamed (SSE). This file does HTTP only: the rules, attachments and the run are the
// assistant's.

#include "server-impl.h"

#include "core/random.h"
#include "core/utf8.h"
#include "app/conversation-turn.h"
#include "app/result-json.h"

#include "app/assistant.h"
#include "backend/backend.h"

#include <condition_variable>

namespace muse {

namespace {

// An assistant's refusal as an HTTP answer.
void send_refusal(http::response & res, const error & e, const ask_refusal & why, bool shutting_down) {
    if (e.code == ERROR_CONTEXT_OVERFLOW) {
        send_error(res, make_error(400, e.message, "invalid_request_error", "context_length_exceeded"));
    } else if (e.code == ERROR_INTERNAL) {
        send_error(res, make_error(500, e.message, "server_error"));
    } else if (e.code == ERROR_ENGINE_STOPPED) {
        if (shutting_down) send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        else res.status = 499;  // the client left
    } else {
        send_error(res, bad_request(why.field == "json_schema" ? "response_format" : why.field, e.message));
    }
}

// What the model read for each image and table (OCR text, table summary), put in the answer.
void add_attachments(ojson & body, const ojson & read) {
    if (read.empty()) return;
    if (body.contains("muse")) {
        body["muse"]["attachments"] = read;
    } else {
        for (auto & c : body["choices"]) c["muse"]["attachments"] = read;
    }
}

// The stream's last events: each choice's end (with the muse trace), usage, [DONE]; or an error.
std::string stream_tail(chunk_builder & builder, const ask_output & out, bool include_usage, const api_error & err) {
    std::string s;
    if (err) {
        s += "data: " + wire(error_json(err)) + "\n\n";
    } else {
        for (int i = 0; i < (int) out.results.size(); ++i) {
            for (auto & c : builder.finish(i, out.results[i])) {
                if (!out.attachments.empty() && c.contains("muse") && c["muse"].value("event", "") == "done") {
                    c["muse"]["result"]["attachments"] = out.attachments;
                }
                s += "data: " + wire(c) + "\n\n";
            }
        }
        if (include_usage) s += "data: " + wire(builder.usage(out.results)) + "\n\n";
    }
    return s + "data: [DONE]\n\n";
}

}  // namespace

void server::impl::routes_chat() {
    auto chat = counted([this](http::request & req, http::response & res) { handle_chat(req, res); });
    svr.route("POST", "/v1/chat/completions", chat);
    svr.route("POST", "/chat/completions", chat);
}

// The turn: a queued request waits here with its body read but nothing of it parsed, decoded
// or tokenised. False: answered (the client left, or the server is shutting down).
bool server::impl::take_turn(http::request & req, http::response & res, const cancel_token & stop) {
    auto * ticket = static_cast<admission::ticket *>(req.hold.get());
    if (!ticket) {
        send_error(res, make_error(500, "internal error: the request was not admitted", "server_error"));
        return false;
    }
    if (adm.wait(*ticket, stop) == admission::ADMITTED) return true;
    met.cancelled++;
    if (cancelling) {
        send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
    } else {
        res.status = 499;  // the client left while it waited
    }
    return false;
}

// The assistant's input from a parsed body: image_url parts (remote ones fetched here, with the
// server's own client) and uploaded files, as received. False: answered (an error).
bool server::impl::chat_input(const http::request & req, http::response & res, chat_api_request & in, ask_input & ai) {
    ai.session.user = req.user;
    ai.request      = std::move(in.ask);
    ai.n            = in.n;
    for (size_t i = 0; i < in.image_urls.size(); ++i) {
        attachment_input a;
        a.kind  = attachment_input::IMAGE;
        a.name  = "image " + std::to_string(i + 1);
        a.field = "image_url";
        if (in.image_urls[i].rfind("data:", 0) == 0) {
            a.bytes = std::move(in.image_urls[i]);
        } else if (api_error fe = fetch_image(in.image_urls[i], a.bytes, a.name)) {
            send_error(res, fe);
            return false;
        }
        ai.attachments.push_back(std::move(a));
    }
    in.image_urls.clear();
    for (const auto & fid : in.file_ids) {
        stored_file f;
        if (!files.get(req.user, fid, f)) {
            send_error(res, make_error(404, "attachments: no file '" + fid + "' (upload it with POST /v1/files)", "invalid_request_error",
                                       "file_not_found"));
            return false;
        }
        attachment_input a;
        a.kind   = f.kind == "image" ? attachment_input::IMAGE : attachment_input::TABLE;
        a.name   = f.filename;
        a.shared = f.bytes;
        a.format = f.format;
        ai.attachments.push_back(std::move(a));
    }
    return true;
}

std::shared_ptr<http::stream> server::impl::open_event_stream(http::request & req, http::response & res,
                                                              const std::shared_ptr<request_cancel> & stop) {
    auto out      = std::make_shared<http::stream>();
    out->on_close = [stop](bool complete) {
        if (!complete) stop->src.request_stop();
    };
    res.stream       = out;
    res.content_type = "text/event-stream";
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    req.commit();
    return out;
}

void server::impl::count_chat(const ask_output & out, bool cancelled, clock_type::time_point t0) {
    for (const auto & r : out.results) {
        met.prompt_tokens += (uint64_t) (r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused);
        met.completion_tokens += (uint64_t) r.use.completion_tokens;
        std::lock_guard<std::mutex> lk(met.mu);
        met.modes[ask_mode_name(r.mode)]++;
    }
    if (cancelled) met.cancelled++;
    met.request_us += (uint64_t) (std::chrono::duration<double>(clock_type::now() - t0).count() * 1e6);
    met.chat_done++;
}

void server::impl::handle_chat(http::request & req, http::response & res) {
    const auto t0 = clock_type::now();
    // Cancelled the moment the client leaves (the HTTP layer's event) or a drain's grace period
    // ends, whichever comes first: while queued, while prepared, while running.
    const auto stop = std::make_shared<request_cancel>(req.gone, cancel_all.get_token());
    if (!take_turn(req, res, stop->token())) return;
    chat_api_request in;
    ask_input        ai;
    {
        const std::string body = std::move(req.body);
        req.body.clear();
        if (api_error e = parse_chat_body(body, params.limits, in)) return send_error(res, e);
    }
    // A stored conversation: its messages first (the new ones follow), its owner's only.
    std::string              conv_uid;
    std::vector<chat_message> turn_messages;  // what this request adds to the conversation
    if (!in.conversation_id.empty()) {
        if (!db) return send_error(res, make_error(503, "conversations are kept in the data directory: start muse serve with --data-dir",
                                                   "server_error", "no_data_dir"));
        if (error e = files.user_id(req.user, conv_uid)) return send_error(res, result_error(e));
        std::vector<chat_message> history;
        if (error e = load_history(*db, conv_uid, in.conversation_id, history)) {
            api_error ae = result_error(e);
            ae.param     = "conversation";
            return send_error(res, ae);
        }
        turn_messages = in.ask.messages;
        in.ask.messages.insert(in.ask.messages.begin(), history.begin(), history.end());
    }
    if (!chat_input(req, res, in, ai)) return;

    // The one door: the rules, the hooks, the attachments. A refusal is a status, before any
    // byte of a stream.
    prepared_ask prep;
    ask_refusal  why;
    if (error e = asst.prepare(std::move(ai), prep, &why, stop->token())) return send_refusal(res, e, why, cancelling);

    const std::string id = "chatcmpl-" + random_hex(24);
    const int64_t     created = unix_now();
    chunk_builder     builder(id, created, params.model_id, in.n);
    std::mutex        build_mu;  // the builder is shared by the choices
    std::shared_ptr<http::stream> out;
    auto send = [&](const std::vector<ojson> & chunks) {
        std::string s;
        for (const auto & c : chunks) s += "data: " + wire(c) + "\n\n";
        if (!s.empty() && !out->write(s)) stop->src.request_stop();  // the client left: cancel at the next engine step
    };
    if (in.stream) {
        out = open_event_stream(req, res, stop);
        send(builder.start());
    }
    std::atomic<bool> seen_token{ false };
    choice_sink sink = [&](int i, const ask_event & ev) {
        if (ev.type == ask_event::AGENT_DELTA) first_token(seen_token, t0);
        if (!in.stream) return;
        std::vector<ojson> chunks;
        {
            std::lock_guard<std::mutex> lk(build_mu);
            chunks = builder.event(i, ev);
        }
        send(chunks);
    };
    ask_output result;
    asst.run(prep, sink, stop->token(), result);
    req.hold.reset();  // the work is done: the turn is free before the client can see the end

    const bool cancelled = stop->src.stop_requested();
    count_chat(result, cancelled, t0);
    {
        int64_t tokens = 0;
        for (const auto & r : result.results) tokens += (int64_t) r.use.prompt_tokens_prefilled + r.use.completion_tokens;
        charge_tokens(req.user, tokens);
    }
    api_error err;
    if (cancelled && cancelling) {
        err = make_error(503, "the server is shutting down: the answer was cut short", "server_error", "shutting_down");
    } else if (!cancelled) {
        for (const auto & r : result.results) {
            if (r.err) {
                err = result_error(r.err);
                break;
            }
        }
    }
    // The turn joins its conversation before the client hears it is done: an answer the client
    // got is an answer stored (the first choice's, with its trace and usage).
    if (!err && !cancelled && !in.conversation_id.empty() && !result.results.empty()) {
        if (error e = store_turn(*db, conv_uid, in.conversation_id, turn_messages, result.results.front(), req.user, params.model_id,
                                 asst.safety())) {
            err = result_error(e);
        }
    }
    if (in.stream) {
        if (!out->gone()) {
            out->write(stream_tail(builder, result, in.include_usage, err));
            out->finish();
        }
        return;
    }
    if (cancelled && !cancelling) {
        res.status = 499;  // the client left: nobody reads this
        return;
    }
    if (err) return send_error(res, err);
    ojson body = completion_json(id, created, params.model_id, result.results);
    add_attachments(body, result.attachments);
    res.set_content(wire(body), "application/json");
}

}  // namespace muse
