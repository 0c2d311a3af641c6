// OpenAI's Responses API: POST /v1/responses (not streamed yet), GET and DELETE
// /v1/responses/ID, GET /v1/responses/ID/input_items. A request is turned into the chat
// request the chat route runs (one door, one set of checks); the answer is stored (store:
// true, the default) with its input, so that previous_response_id continues from it, and a
// `conversation` gets the turn appended, as with chat completions.

#include "server-impl.h"

#include "app/conversation-turn.h"
#include "app/result-json.h"
#include "core/json-depth.h"
#include "core/random.h"
#include "core/utf8.h"

namespace muse {

namespace {

constexpr int k_max_chain = 100;  // previous_response_id links followed

// An input or output item as a chat message (ok = false: an item type chat cannot carry).
api_error item_to_message(const ojson & it, const std::string & where, ojson & msg, std::vector<std::string> & file_ids) {
    if (it.is_string()) {
        msg = { { "role", "user" }, { "content", it } };
        return {};
    }
    if (!it.is_object()) return bad_request(where, where + " must be an object or a string");
    const std::string type = it.contains("type") && it["type"].is_string() ? it["type"].get<std::string>() : "message";
    if (type == "message") {
        if (!it.contains("role") || !it["role"].is_string()) return bad_request(where + ".role", where + ".role must be a string");
        msg = { { "role", it["role"] } };
        const ojson & c = it.contains("content") ? it["content"] : ojson();
        if (c.is_string()) {
            msg["content"] = c;
            return {};
        }
        if (!c.is_array()) return bad_request(where + ".content", where + ".content must be a string or an array of parts");
        ojson parts = ojson::array();
        for (size_t k = 0; k < c.size(); ++k) {
            const std::string pw = where + ".content[" + std::to_string(k) + "]";
            const ojson &     p  = c[k];
            const std::string pt = p.is_object() && p.contains("type") && p["type"].is_string() ? p["type"].get<std::string>() : "";
            if (pt == "input_text" || pt == "output_text" || pt == "text") {
                if (!p.contains("text") || !p["text"].is_string()) return bad_request(pw + ".text", pw + ".text must be a string");
                parts.push_back({ { "type", "text" }, { "text", p["text"] } });
            } else if (pt == "input_image") {
                if (p.contains("file_id") && p["file_id"].is_string()) {
                    file_ids.push_back(p["file_id"]);
                } else if (p.contains("image_url") && p["image_url"].is_string()) {
                    parts.push_back({ { "type", "image_url" }, { "image_url", { { "url", p["image_url"] } } } });
                } else {
                    return bad_request(pw, pw + " needs image_url (a data: URI) or file_id");
                }
            } else if (pt == "input_file") {
                if (!p.contains("file_id") || !p["file_id"].is_string()) return bad_request(pw + ".file_id", pw + ".file_id must be a file id");
                file_ids.push_back(p["file_id"]);
            } else {
                return bad_request(pw + ".type", pw + ".type must be input_text, output_text, input_image or input_file");
            }
        }
        msg["content"] = parts;
        return {};
    }
    if (type == "function_call") {
        for (const char * k : { "call_id", "name", "arguments" }) {
            if (!it.contains(k) || !it[k].is_string()) return bad_request(where + "." + k, where + "." + k + " must be a string");
        }
        msg = { { "role", "assistant" }, { "content", "" },
                { "tool_calls", ojson::array({ { { "id", it["call_id"] }, { "type", "function" },
                                                 { "function", { { "name", it["name"] }, { "arguments", it["arguments"] } } } } }) } };
        return {};
    }
    if (type == "function_call_output") {
        for (const char * k : { "call_id", "output" }) {
            if (!it.contains(k) || !it[k].is_string()) return bad_request(where + "." + k, where + "." + k + " must be a string");
        }
        msg = { { "role", "tool" }, { "tool_call_id", it["call_id"] }, { "content", it["output"] } };
        return {};
    }
    if (type == "reasoning") {
        msg = nullptr;  // earlier reasoning is not replayed (as OpenAI does for other models' reasoning)
        return {};
    }
    return bad_request(where + ".type", where + ".type must be message, function_call, function_call_output or reasoning, got '" +
                                            utf8_head(type, 40) + "'");
}

// "messages[7].content" -> "input[2].content" when the request's own input starts at message 5.
void rename_param(api_error & e, size_t offset) {
    auto fix = [&](std::string & s) {
        const size_t at = s.find("messages[");
        if (at == std::string::npos) return;
        const size_t close = s.find(']', at);
        if (close == std::string::npos) return;
        const long k = strtol(s.c_str() + at + 9, nullptr, 10);
        if (k < (long) offset) return;
        s = s.substr(0, at) + "input[" + std::to_string(k - (long) offset) + s.substr(close);
    };
    fix(e.param);
    fix(e.message);
    // The chat request's names of the fields this request named otherwise.
    for (const auto & [chat, resp] : { std::pair<std::string, std::string>{ "max_tokens", "max_output_tokens" },
                                       { "response_format.json_schema", "text.format" }, { "response_format", "text.format" },
                                       { "reasoning_effort", "reasoning.effort" } }) {
        for (std::string * t : { &e.param, &e.message }) {
            if (t->rfind(chat, 0) == 0) *t = resp + t->substr(chat.size());
        }
    }
}

ojson usage_of(const ask_result & r) {
    const int64_t in = r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused;
    return { { "input_tokens", in }, { "input_tokens_details", { { "cached_tokens", r.use.prompt_tokens_reused } } },
             { "output_tokens", r.use.completion_tokens }, { "output_tokens_details", { { "reasoning_tokens", 0 } } },
             { "total_tokens", in + r.use.completion_tokens } };
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
    if (body.contains("stream") && !body["stream"].is_null() && !body["stream"].is_boolean()) {
        return send_error(res, bad_request("stream", "stream must be true or false"));
    }
    if (body.contains("stream") && body["stream"] == true) {
        return send_error(res, bad_request("stream", "streamed responses are not served yet: send stream: false, or use "
                                                     "/v1/chat/completions with stream: true"));
    }
    const bool store_it = !body.contains("store") || body["store"].is_null() || body["store"] == true;
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
    std::string uid;
    if ((store_it || !prev.empty() || !conv.empty()) && !db) {
        return send_error(res, make_error(503, "responses are kept in the data directory: start muse serve with --data-dir, or send store: false",
                                          "server_error", "no_data_dir"));
    }
    if (db) {
        if (error e = files.user_id(req.user, uid)) return send_error(res, result_error(e));
    }

    // The chat request: instructions, the history, then this input.
    ojson                    messages = ojson::array();
    std::vector<std::string> file_ids;
    if (body.contains("instructions") && !body["instructions"].is_null()) {
        if (!body["instructions"].is_string()) return send_error(res, bad_request("instructions", "instructions must be a string"));
        messages.push_back({ { "role", "system" }, { "content", body["instructions"] } });
    }
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
                    if (item_to_message(it, "previous_response_id", m, ignored) || m.is_null()) continue;
                    messages.push_back(m);
                }
            }
        }
    }
    if (!conv.empty()) {
        std::vector<chat_message> history;
        if (error e = load_history(*db, uid, conv, history)) {
            api_error ae = result_error(e);
            ae.param     = "conversation";
            return send_error(res, ae);
        }
        for (const auto & m : history) messages.push_back({ { "role", m.role }, { "content", m.content } });
    }
    const size_t offset = messages.size();
    ojson        input  = ojson::array();
    if (!body.contains("input") || body["input"].is_null()) return send_error(res, bad_request("input", "input is required"));
    if (body["input"].is_string()) {
        input.push_back({ { "type", "message" }, { "role", "user" }, { "content", body["input"] } });
    } else if (body["input"].is_array()) {
        input = body["input"];
    } else {
        return send_error(res, bad_request("input", "input must be a string or an array of items"));
    }
    for (size_t i = 0; i < input.size(); ++i) {
        ojson m;
        if (api_error e = item_to_message(input[i], "input[" + std::to_string(i) + "]", m, file_ids)) return send_error(res, e);
        if (!m.is_null()) messages.push_back(m);
    }
    ojson cbody = { { "messages", messages } };
    for (const char * k : { "temperature", "top_p", "top_k", "min_p", "seed", "mode", "agents", "thinking_budget", "planner", "prune",
                            "refine", "vote", "cache_salt", "tool_choice", "parallel_tool_calls", "model" }) {
        if (body.contains(k)) cbody[k] = body[k];
    }
    if (body.contains("max_output_tokens") && !body["max_output_tokens"].is_null()) cbody["max_tokens"] = body["max_output_tokens"];
    if (body.contains("reasoning") && body["reasoning"].is_object() && body["reasoning"].contains("effort")) {
        cbody["reasoning_effort"] = body["reasoning"]["effort"];
    }
    if (body.contains("text") && body["text"].is_object() && body["text"].contains("format")) {
        const ojson & f = body["text"]["format"];
        if (!f.is_object() || !f.contains("type") || !f["type"].is_string()) {
            return send_error(res, bad_request("text.format.type", "text.format.type must be text, json_object or json_schema"));
        }
        if (f.is_object() && f.value("type", "") == "json_schema") {
            cbody["response_format"] = { { "type", "json_schema" },
                                         { "json_schema", { { "name", f.value("name", "answer") }, { "schema", f.contains("schema") ? f["schema"] : ojson() } } } };
        } else if (f.is_object()) {
            cbody["response_format"] = { { "type", f.value("type", "text") } };
        }
    }
    if (body.contains("tools") && body["tools"].is_array()) {
        ojson tools = ojson::array();
        for (const auto & t : body["tools"]) {
            if (!t.is_object() || t.value("type", "") != "function") {
                return send_error(res, bad_request("tools", "tools: only function tools ({type: function, name, parameters})"));
            }
            ojson fn = { { "name", t.contains("name") ? t["name"] : ojson() } };
            if (t.contains("description")) fn["description"] = t["description"];
            if (t.contains("parameters")) fn["parameters"] = t["parameters"];
            tools.push_back({ { "type", "function" }, { "function", fn } });
        }
        cbody["tools"] = tools;
    }
    ojson attachments = body.contains("attachments") && body["attachments"].is_array() ? body["attachments"] : ojson::array();
    for (const auto & f : file_ids) attachments.push_back(f);
    if (!attachments.empty()) cbody["attachments"] = attachments;

    chat_api_request in;
    try {
        if (api_error e = parse_chat_request(nlohmann::json::parse(cbody.dump()), params.limits, in)) {
            rename_param(e, offset);
            return send_error(res, e);
        }
    } catch (const std::exception & ex) {
        return send_error(res, bad_request("", std::string("malformed request: ") + ex.what()));
    }
    in.stream = false;
    in.n      = 1;
    std::vector<chat_message> turn_messages(in.ask.messages.begin() + (long) std::min(offset, in.ask.messages.size()), in.ask.messages.end());
    ask_input ai;
    if (!chat_input(req, res, in, ai)) return;
    prepared_ask prep;
    ask_refusal  why;
    if (error e = asst.prepare(std::move(ai), prep, &why, stop->token())) {
        api_error ae = result_error(e);
        if (e.code == ERROR_INVALID_ARGUMENT || e.code == ERROR_BAD_INPUT) ae = bad_request(why.field, e.message);
        return send_error(res, ae);
    }
    ask_output result;
    asst.run(prep, [](int, const ask_event &) {}, stop->token(), result);
    req.hold.reset();
    const bool cancelled = stop->src.stop_requested();
    count_chat(result, cancelled, t0);
    if (result.results.empty()) return send_error(res, make_error(500, "no result", "server_error"));
    const ask_result & r = result.results.front();
    charge_tokens(req.user, (int64_t) r.use.prompt_tokens_prefilled + r.use.completion_tokens);
    if (cancelled) {
        if (cancelling) return send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        res.status = 499;
        return;
    }
    if (r.err) return send_error(res, result_error(r.err));

    // The response object.
    const std::string id = "resp_" + random_hex(48);
    ojson             output = ojson::array();
    if (!r.reasoning.empty()) {
        output.push_back({ { "type", "reasoning" }, { "id", "rs_" + random_hex(48) }, { "summary", ojson::array() },
                           { "content", ojson::array({ { { "type", "reasoning_text" }, { "text", utf8_sanitize(r.reasoning) } } }) } });
    }
    for (const auto & tc : r.tool_calls) {
        output.push_back({ { "type", "function_call" }, { "id", "fc_" + random_hex(48) }, { "call_id", tc.id }, { "name", tc.name },
                           { "arguments", tc.arguments }, { "status", "completed" } });
    }
    if (r.tool_calls.empty()) {
        output.push_back({ { "type", "message" }, { "id", "msg_" + random_hex(48) }, { "status", "completed" }, { "role", "assistant" },
                           { "content", ojson::array({ { { "type", "output_text" }, { "text", utf8_sanitize(r.answer) },
                                                         { "annotations", ojson::array() } } }) } });
    }
    const bool incomplete = r.finish == FINISH_LENGTH;
    ojson      resp       = { { "id", id }, { "object", "response" }, { "created_at", unix_now() },
                              { "status", incomplete ? "incomplete" : "completed" }, { "error", nullptr },
                              { "incomplete_details", incomplete ? ojson{ { "reason", "max_output_tokens" } } : ojson(nullptr) },
                              { "instructions", body.contains("instructions") ? body["instructions"] : ojson(nullptr) },
                              { "max_output_tokens", body.contains("max_output_tokens") ? body["max_output_tokens"] : ojson(nullptr) },
                              { "model", params.model_id }, { "output", output }, { "parallel_tool_calls", true },
                              { "previous_response_id", prev.empty() ? ojson(nullptr) : ojson(prev) }, { "store", store_it },
                              { "metadata", body.contains("metadata") && body["metadata"].is_object() ? body["metadata"] : ojson::object() },
                              { "usage", usage_of(r) }, { "muse", to_json(r) } };
    if (!conv.empty()) resp["conversation"] = { { "id", conv } };

    // Stored before it is answered: a response the client got can be continued.
    if (store_it) {
        response_record rec;
        rec.id                   = id;
        rec.conversation_id      = conv;
        rec.previous_response_id = prev;
        rec.input_json           = wire(input);
        rec.body_json            = wire(resp);
        if (error e = db->put_response(uid, rec)) return send_error(res, result_error(e));
    }
    if (!conv.empty()) {
        if (error e = store_turn(*db, uid, conv, turn_messages, r, req.user, params.model_id)) return send_error(res, result_error(e));
    }
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
