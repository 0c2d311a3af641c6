// OpenAI's Responses API: POST /v1/responses (whole or streamed as typed events), GET and
// DELETE /v1/responses/ID, GET /v1/responses/ID/input_items. A request is turned into the chat
// request the chat route runs (one door, one set of checks; responses-api.h does the wire
// format); the answer is stored (store: true, the default) with its input, so that
// previous_response_id continues from it, and a `conversation` gets the turn appended, as with
// chat completions.

#include "server-impl.h"

#include "responses-api.h"

#include "app/conversation-turn.h"
#include "app/safety-door.h"
#include "app/result-json.h"
#include "core/json-depth.h"
#include "core/random.h"
#include "core/utf8.h"

namespace muse {

namespace {

constexpr int k_max_chain = 100;  // previous_response_id links followed

// truncation: "auto": drops the oldest whole turns (a user message and what answered it) until
// the messages fit the context with `room` tokens to spare; the last turn is never dropped.
// Returns the messages dropped; an error when even the last turn alone does not fit.
error truncate_history(const backend & be, std::vector<chat_message> & messages, const std::vector<chat_tool> & tools,
                       int32_t room, int & dropped) {
    dropped              = 0;
    const int32_t n_ctx  = be.caps().n_ctx;
    if (n_ctx <= 0) return {};
    // Room for what the run adds (the mode's instructions, reasoning, the answer): at least an
    // eighth of the context, at most half.
    const int32_t budget = n_ctx - std::clamp(room, n_ctx / 8, n_ctx / 2);
    size_t        head   = 0;  // leading system messages stay
    while (head < messages.size() && messages[head].role == "system") head++;
    std::vector<size_t> turns;  // where each turn starts
    for (size_t i = head; i < messages.size(); ++i) {
        if (messages[i].role == "user" && (turns.empty() || i > turns.back())) turns.push_back(i);
    }
    if (turns.empty() || turns.front() != head) turns.insert(turns.begin(), head);
    auto tokens_without = [&](size_t k, int32_t & n) {  // the first k turns dropped
        chat_request r;
        r.messages.assign(messages.begin(), messages.begin() + (long) head);
        r.messages.insert(r.messages.end(), messages.begin() + (long) turns[k], messages.end());
        r.tools = tools;
        return be.count_prompt_tokens(r, n);
    };
    int32_t n = 0;
    if (error e = tokens_without(0, n)) return {};  // the backend cannot count: the engine's own check decides
    if (n <= budget) return {};
    int32_t last = 0;
    if (error e = tokens_without(turns.size() - 1, last)) return e;
    if (last > budget) {
        return { ERROR_CONTEXT_OVERFLOW, "the last turn alone takes " + std::to_string(last) + " tokens of the context's " +
                                             std::to_string(n_ctx) + " (with " + std::to_string(n_ctx - budget) +
                                             " kept for the answer): shorten it, lower max_output_tokens or raise --ctx" };
    }
    size_t lo = 1, hi = turns.size() - 1;  // the fewest turns to drop: fits(hi) holds
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (error e = tokens_without(mid, n)) return e;
        if (n <= budget) hi = mid;
        else lo = mid + 1;
    }
    dropped = (int) (turns[hi] - head);
    messages.erase(messages.begin() + (long) head, messages.begin() + (long) turns[hi]);
    return {};
}

// The events of a stream as SSE: "event: TYPE" and "data: JSON" per event.
std::string sse(const std::vector<ojson> & events) {
    std::string s;
    for (const auto & e : events) s += "event: " + e["type"].get<std::string>() + "\ndata: " + wire(e) + "\n\n";
    return s;
}

}  // namespace

void server::impl::handle_response(http::request & req, http::response & res) {
    const auto t0   = clock_type::now();
    const auto stop = std::make_shared<request_cancel>(req.gone, cancel_all.get_token());
    if (!take_turn(req, res, stop->token())) return;
    std::string where;
    if (json_text_depth(req.body, k_max_json_depth, &where) > k_max_json_depth) {
        return send_error(res, bad_request(where, "the request body nests more than " + std::to_string(k_max_json_depth) + " levels"));
    }
    const ojson body = ojson::parse(req.body, nullptr, false);
    req.body.clear();
    if (body.is_discarded() || !body.is_object()) return send_error(res, bad_request("", "the request body must be a JSON object"));
    if (body.contains("previous_response_id") && !body["previous_response_id"].is_null() && !body["previous_response_id"].is_string()) {
        return send_error(res, bad_request("previous_response_id", "previous_response_id must be a response id"));
    }
    const std::string prev = body.contains("previous_response_id") && body["previous_response_id"].is_string()
                                 ? body["previous_response_id"].get<std::string>() : "";
    std::string conv;
    if (body.contains("conversation") && !body["conversation"].is_null()) {
        const ojson & c = body["conversation"];
        conv = c.is_string() ? c.get<std::string>() : c.is_object() && c.contains("id") && c["id"].is_string() ? c["id"].get<std::string>() : "";
        if (conv.empty()) return send_error(res, bad_request("conversation", "conversation must be an id or {id}"));
    }
    if (!prev.empty() && !conv.empty()) {
        return send_error(res, bad_request("previous_response_id", "use previous_response_id or conversation, not both"));
    }
    const bool wants_store = !body.contains("store") || body["store"].is_null() || body["store"] == true;
    std::string uid;
    if ((wants_store || !prev.empty() || !conv.empty()) && !db) {
        return send_error(res, make_error(503, "responses are kept in the data directory: start muse serve with --data-dir, or send store: false",
                                          "server_error", "no_data_dir"));
    }
    if (db) {
        if (error e = files.user_id(req.user, uid)) return send_error(res, result_error(e));
    }

    // The history: the previous responses' chain (oldest first), or the stored conversation.
    ojson history = ojson::array();
    if (!prev.empty()) {
        std::vector<response_record> chain;
        for (std::string id = prev; !id.empty() && (int) chain.size() < k_max_chain;) {
            response_record r;
            if (error e = db->get_response(uid, id, r)) {
                api_error ae = result_error(e);
                ae.param     = "previous_response_id";
                return send_error(res, ae);
            }
            id = r.previous_response_id;
            chain.push_back(std::move(r));
        }
        for (auto r = chain.rbegin(); r != chain.rend(); ++r) {
            const ojson in  = ojson::parse(r->input_json, nullptr, false);
            const ojson out = ojson::parse(r->body_json, nullptr, false);
            std::vector<std::string> ignored;
            for (const ojson * list : { &in, out.is_object() && out.contains("output") ? &out["output"] : nullptr }) {
                if (!list || !list->is_array()) continue;
                for (const auto & it : *list) {
                    ojson m;
                    if (response_item_to_message(it, "previous_response_id", m, ignored) || m.is_null()) continue;
                    history.push_back(m);
                }
            }
        }
    }
    if (!conv.empty()) {
        std::vector<chat_message> stored;
        if (error e = load_history(*db, uid, conv, stored)) {
            api_error ae = result_error(e);
            ae.param     = "conversation";
            return send_error(res, ae);
        }
        for (const auto & m : stored) history.push_back({ { "role", m.role }, { "content", m.content } });
    }
    responses_request rq;
    if (api_error e = parse_responses_request(body, history, rq)) return send_error(res, e);

    chat_api_request in;
    try {
        if (api_error e = parse_chat_request(nlohmann::json::parse(rq.chat.dump()), params.limits, in)) {
            rename_chat_error(e, rq.offset);
            return send_error(res, e);
        }
    } catch (const std::exception & ex) {
        return send_error(res, bad_request("", std::string("malformed request: ") + ex.what()));
    }
    in.stream = false;
    in.n      = 1;
    std::vector<chat_message> turn_messages(in.ask.messages.begin() + (long) std::min(rq.offset, in.ask.messages.size()), in.ask.messages.end());
    int truncated = 0;
    if (rq.truncate) {
        const int32_t room = in.ask.opt.answer_tokens + (in.ask.opt.mode == MODE_INSTANT ? 0 : in.ask.opt.budget);
        if (error e = truncate_history(be, in.ask.messages, in.ask.opt.client_tools, room, truncated)) {
            api_error ae = result_error(e);
            ae.param     = "input";
            return send_error(res, ae);
        }
    }
    ask_input ai;
    if (!chat_input(req, res, in, ai)) return;
    prepared_ask prep;
    ask_refusal  why;
    if (error e = asst.prepare(std::move(ai), prep, &why, stop->token())) {
        api_error ae = result_error(e);
        if (e.code == ERROR_INVALID_ARGUMENT || e.code == ERROR_BAD_INPUT) ae = bad_request(why.field, e.message);
        rename_chat_error(ae, rq.offset);
        return send_error(res, ae);
    }

    // The response object's fixed fields; the builder adds status, output and usage.
    const std::string id       = "resp_" + random_hex(48);
    ojson             skeleton = { { "id", id }, { "object", "response" }, { "created_at", unix_now() }, { "status", "in_progress" },
                                   { "error", nullptr }, { "incomplete_details", nullptr },
                                   { "instructions", body.contains("instructions") ? body["instructions"] : ojson(nullptr) },
                                   { "max_output_tokens", body.contains("max_output_tokens") ? body["max_output_tokens"] : ojson(nullptr) },
                                   { "model", params.model_id }, { "output", ojson::array() }, { "parallel_tool_calls", true },
                                   { "previous_response_id", prev.empty() ? ojson(nullptr) : ojson(prev) }, { "store", rq.store },
                                   { "truncation", rq.truncate ? "auto" : "disabled" },
                                   { "metadata", body.contains("metadata") && body["metadata"].is_object() ? body["metadata"] : ojson::object() },
                                   { "usage", nullptr } };
    if (!conv.empty()) skeleton["conversation"] = { { "id", conv } };
    if (truncated > 0) skeleton["muse"] = { { "truncated_messages", truncated } };
    response_builder builder(skeleton, rq.muse_events);

    std::shared_ptr<http::stream> out;
    std::mutex                    out_mu;  // the builder and the stream, shared by the agents' events
    auto send = [&](const std::vector<ojson> & events) {
        if (events.empty()) return;
        if (!out->write(sse(events))) stop->src.request_stop();  // the client left: cancel at the next engine step
    };
    if (rq.stream) {
        out = open_event_stream(req, res, stop);
        send(builder.start());
    }
    std::atomic<bool> seen_token{ false };
    choice_sink sink = [&](int, const ask_event & ev) {
        if (ev.type == ask_event::AGENT_DELTA) first_token(seen_token, t0);
        if (!rq.stream) return;
        std::lock_guard<std::mutex> lk(out_mu);
        send(builder.event(ev));
    };
    ask_output result;
    asst.run(prep, sink, stop->token(), result);
    req.hold.reset();  // the work is done: the turn is free before the client can see the end
    const bool cancelled = stop->src.stop_requested();
    count_chat(result, cancelled, t0);
    api_error err;
    if (result.results.empty()) err = make_error(500, "internal error: the run gave no result", "server_error");
    if (!err) {
        const ask_result & r = result.results.front();
        charge_tokens(req.user, (int64_t) r.use.prompt_tokens_prefilled + r.use.completion_tokens);
        if (cancelled && cancelling) {
            err = make_error(503, "the server is shutting down: the answer was cut short", "server_error", "shutting_down");
        } else if (!cancelled && r.err) {
            err = result_error(r.err);
            if (r.err.code == ERROR_CONTEXT_OVERFLOW && !rq.truncate) err.message += " (or send truncation: \"auto\" to drop the oldest turns)";
        }
    }
    if (cancelled && !cancelling) {
        if (!rq.stream) res.status = 499;  // the client left: nobody reads this
        return;
    }
    ojson resp;
    std::vector<ojson> tail;
    if (!err) {
        std::lock_guard<std::mutex> lk(out_mu);
        tail = builder.finish(result.results.front(), resp);
        if (!result.attachments.empty()) resp["muse"]["attachments"] = result.attachments;
        if (!tail.empty() && resp.contains("muse")) tail.back()["response"]["muse"] = resp["muse"];
    }
    // Stored before it is answered: a response the client got can be continued.
    if (!err && rq.store) {
        response_record rec;
        rec.id                   = id;
        rec.conversation_id      = conv;
        rec.previous_response_id = prev;
        ojson stored_in = rq.input, stored_body = resp;
        if (const safety_door * sd = asst.safety(); sd && sd->policy().enabled && sd->policy().redact_store) {
            pii_redactor red;  // personal data is stored as placeholders, the same value the same one
            sd->redact_json(stored_in, red);
            sd->redact_json(stored_body, red);
        }
        rec.input_json = wire(stored_in);
        rec.body_json  = wire(stored_body);
        if (error e = db->put_response(uid, rec)) err = result_error(e);
    }
    if (!err && !conv.empty()) {
        if (error e = store_turn(*db, uid, conv, turn_messages, result.results.front(), req.user, params.model_id, asst.safety())) err = result_error(e);
    }
    if (rq.stream) {
        std::lock_guard<std::mutex> lk(out_mu);
        if (!out->gone()) {
            out->write(sse(err ? builder.fail(err) : tail));
            out->finish();
        }
        return;
    }
    if (err) return send_error(res, err);
    res.set_content(wire(resp), "application/json");
}

void server::impl::routes_responses() {
    svr.route("POST", "/v1/responses", counted([this](http::request & req, http::response & res) {
        try {
            handle_response(req, res);
        } catch (const nlohmann::json::exception & e) {
            // A field of an unexpected type that a check missed: still the client's error.
            send_error(res, bad_request("", std::string("malformed request: ") + e.what()));
        }
    }));
    auto owned = [this](http::request & req, http::response & res, std::string & uid, response_record & r) {
        if (!db) {
            send_error(res, make_error(503, "responses are kept in the data directory: start muse serve with --data-dir", "server_error", "no_data_dir"));
            return false;
        }
        if (error e = files.user_id(req.user, uid)) {
            send_error(res, result_error(e));
            return false;
        }
        if (error e = db->get_response(uid, req.params.at("id"), r)) {
            send_error(res, result_error(e));
            return false;
        }
        return true;
    };
    svr.route("GET", "/v1/responses/:id", counted([=](http::request & req, http::response & res) {
        std::string     uid;
        response_record r;
        if (!owned(req, res, uid, r)) return;
        res.set_content(r.body_json, "application/json");
    }));
    svr.route("DELETE", "/v1/responses/:id", counted([=, this](http::request & req, http::response & res) {
        std::string     uid;
        response_record r;
        if (!owned(req, res, uid, r)) return;
        if (error e = db->delete_response(uid, r.id)) return send_error(res, result_error(e));
        res.set_content(wire(ojson{ { "id", r.id }, { "object", "response.deleted" }, { "deleted", true } }), "application/json");
    }));
    svr.route("GET", "/v1/responses/:id/input_items", counted([=](http::request & req, http::response & res) {
        std::string     uid;
        response_record r;
        if (!owned(req, res, uid, r)) return;
        ojson in   = ojson::parse(r.input_json, nullptr, false);
        ojson data = ojson::array();
        if (in.is_array()) {
            for (size_t i = 0; i < in.size(); ++i) {
                ojson it = in[i].is_object() ? in[i] : ojson{ { "type", "message" }, { "role", "user" }, { "content", in[i] } };
                if (!it.contains("id")) it["id"] = r.id + "_in_" + std::to_string(i);
                data.push_back(it);
            }
        }
        res.set_content(wire(ojson{ { "object", "list" }, { "data", data }, { "first_id", data.empty() ? ojson(nullptr) : data.front()["id"] },
                                    { "last_id", data.empty() ? ojson(nullptr) : data.back()["id"] }, { "has_more", false } }),
                        "application/json");
    }));
}

}  // namespace muse
