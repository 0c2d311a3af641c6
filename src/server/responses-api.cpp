// OpenAI's Responses API wire format (see responses-api.h).

#include "responses-api.h"

#include "app/result-json.h"
#include "core/random.h"
#include "core/utf8.h"

namespace muse {

api_error response_item_to_message(const ojson & it, const std::string & where, ojson & msg, std::vector<std::string> & file_ids) {
    if (it.is_string()) {
        msg = { { "role", "user" }, { "content", it } };
        return {};
    }
    if (!it.is_object()) return bad_request(where, where + " must be an object or a string");
    if (it.contains("type") && !it["type"].is_string()) return bad_request(where + ".type", where + ".type must be a string");
    const std::string type = it.contains("type") ? it["type"].get<std::string>() : "message";
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

api_error parse_responses_request(const ojson & body, const ojson & history, responses_request & out) {
    if (!body.is_object()) return bad_request("", "the request body must be a JSON object");
    auto flag = [&](const char * k, bool def, bool & v) -> api_error {
        v = def;
        if (!body.contains(k) || body[k].is_null()) return {};
        if (!body[k].is_boolean()) return bad_request(k, std::string(k) + " must be true or false");
        v = body[k].get<bool>();
        return {};
    };
    if (api_error e = flag("stream", false, out.stream)) return e;
    if (api_error e = flag("store", true, out.store)) return e;
    if (body.contains("truncation") && !body["truncation"].is_null()) {
        const ojson & t = body["truncation"];
        if (!t.is_string() || (t != "auto" && t != "disabled")) return bad_request("truncation", "truncation must be \"auto\" or \"disabled\"");
        out.truncate = t == "auto";
    }
    if (body.contains("stream_options") && !body["stream_options"].is_null()) {
        const ojson & so = body["stream_options"];
        if (!so.is_object()) return bad_request("stream_options", "stream_options must be an object");
        if (so.contains("muse_events")) {
            if (!so["muse_events"].is_boolean()) return bad_request("stream_options.muse_events", "stream_options.muse_events must be true or false");
            out.muse_events = so["muse_events"].get<bool>();
        }
    }

    // The messages: instructions, the history, then this input.
    ojson messages = ojson::array();
    if (body.contains("instructions") && !body["instructions"].is_null()) {
        if (!body["instructions"].is_string()) return bad_request("instructions", "instructions must be a string");
        messages.push_back({ { "role", "system" }, { "content", body["instructions"] } });
    }
    if (history.is_array()) {
        for (const auto & m : history) messages.push_back(m);
    }
    out.offset = messages.size();
    out.input  = ojson::array();
    if (!body.contains("input") || body["input"].is_null()) return bad_request("input", "input is required");
    if (body["input"].is_string()) {
        out.input.push_back({ { "type", "message" }, { "role", "user" }, { "content", body["input"] } });
    } else if (body["input"].is_array()) {
        out.input = body["input"];
    } else {
        return bad_request("input", "input must be a string or an array of items");
    }
    for (size_t i = 0; i < out.input.size(); ++i) {
        ojson m;
        if (api_error e = response_item_to_message(out.input[i], "input[" + std::to_string(i) + "]", m, out.file_ids)) return e;
        if (!m.is_null()) messages.push_back(m);
    }

    ojson & c = out.chat;
    c         = { { "messages", messages } };
    for (const char * k : { "temperature", "top_p", "top_k", "min_p", "seed", "mode", "agents", "thinking_budget", "planner", "planner_budget", "prune",
                            "refine", "verify", "vote", "cache_salt", "tool_choice", "parallel_tool_calls", "model" }) {
        if (body.contains(k)) c[k] = body[k];
    }
    if (body.contains("max_output_tokens") && !body["max_output_tokens"].is_null()) c["max_tokens"] = body["max_output_tokens"];
    if (body.contains("reasoning") && !body["reasoning"].is_null()) {
        const ojson & r = body["reasoning"];
        if (!r.is_object()) return bad_request("reasoning", "reasoning must be an object ({effort})");
        if (r.contains("effort") && !r["effort"].is_null()) c["reasoning_effort"] = r["effort"];
    }
    if (body.contains("text") && !body["text"].is_null()) {
        if (!body["text"].is_object()) return bad_request("text", "text must be an object ({format})");
        if (body["text"].contains("format") && !body["text"]["format"].is_null()) {
            const ojson & f = body["text"]["format"];
            if (!f.is_object() || !f.contains("type") || !f["type"].is_string()) {
                return bad_request("text.format.type", "text.format.type must be text, json_object or json_schema");
            }
            if (f["type"] == "json_schema") {
                if (f.contains("name") && !f["name"].is_string()) return bad_request("text.format.name", "text.format.name must be a string");
                c["response_format"] = { { "type", "json_schema" },
                                         { "json_schema", { { "name", f.value("name", "answer") }, { "schema", f.contains("schema") ? f["schema"] : ojson() } } } };
            } else {
                c["response_format"] = { { "type", f["type"] } };
            }
        }
    }
    if (body.contains("tools") && !body["tools"].is_null()) {
        if (!body["tools"].is_array()) return bad_request("tools", "tools must be an array");
        ojson tools = ojson::array();
        for (size_t i = 0; i < body["tools"].size(); ++i) {
            const ojson & t = body["tools"][i];
            if (!t.is_object() || !t.contains("type") || t["type"] != "function") {
                return bad_request("tools[" + std::to_string(i) + "].type", "tools: only function tools ({type: function, name, parameters})");
            }
            ojson fn = { { "name", t.contains("name") ? t["name"] : ojson() } };
            if (t.contains("description")) fn["description"] = t["description"];
            if (t.contains("parameters")) fn["parameters"] = t["parameters"];
            if (t.contains("side_effects")) fn["side_effects"] = t["side_effects"];
            tools.push_back({ { "type", "function" }, { "function", fn } });
        }
        c["tools"] = tools;
    }
    ojson attachments = ojson::array();
    if (body.contains("attachments") && !body["attachments"].is_null()) {
        if (!body["attachments"].is_array()) return bad_request("attachments", "attachments must be an array of file ids");
        attachments = body["attachments"];
    }
    for (const auto & f : out.file_ids) attachments.push_back(f);
    if (!attachments.empty()) c["attachments"] = attachments;
    return {};
}

void rename_chat_error(api_error & e, size_t offset) {
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

ojson response_usage(const ask_result & r) {
    const int64_t in = r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused;
    return { { "input_tokens", in }, { "input_tokens_details", { { "cached_tokens", r.use.prompt_tokens_reused } } },
             { "output_tokens", r.use.completion_tokens }, { "output_tokens_details", { { "reasoning_tokens", 0 } } },
             { "total_tokens", in + r.use.completion_tokens } };
}

// ---- the stream ----

response_builder::response_builder(ojson skeleton_, bool muse_events_) : skeleton(std::move(skeleton_)), muse_events(muse_events_) {}

ojson response_builder::make(const char * type, ojson fields) {
    ojson e = { { "type", type } };
    for (auto & [k, v] : fields.items()) e[k] = v;
    e["sequence_number"] = seq++;
    return e;
}

ojson response_builder::response(const char * status) const {
    ojson r = skeleton;
    r["status"] = status;
    r["output"] = output;
    if (!r.contains("usage")) r["usage"] = nullptr;
    return r;
}

std::vector<ojson> response_builder::start() {
    std::vector<ojson> out;
    out.push_back(make("response.created", { { "response", response("in_progress") } }));
    out.push_back(make("response.in_progress", { { "response", response("in_progress") } }));
    return out;
}

void response_builder::open_reasoning(std::vector<ojson> & out) {
    reasoning.index = (int) output.size();
    reasoning.id    = "rs_" + random_hex(48);
    output.push_back({ { "type", "reasoning" }, { "id", reasoning.id }, { "summary", ojson::array() }, { "content", ojson::array() } });
    out.push_back(make("response.output_item.added", { { "output_index", reasoning.index }, { "item", output.back() } }));
    out.push_back(make("response.content_part.added", { { "item_id", reasoning.id }, { "output_index", reasoning.index }, { "content_index", 0 },
                                                         { "part", { { "type", "reasoning_text" }, { "text", "" } } } }));
}

void response_builder::open_message(std::vector<ojson> & out) {
    message.index = (int) output.size();
    message.id    = "msg_" + random_hex(48);
    output.push_back({ { "type", "message" }, { "id", message.id }, { "status", "in_progress" }, { "role", "assistant" },
                       { "content", ojson::array() } });
    out.push_back(make("response.output_item.added", { { "output_index", message.index }, { "item", output.back() } }));
    out.push_back(make("response.content_part.added", { { "item_id", message.id }, { "output_index", message.index }, { "content_index", 0 },
                                                         { "part", { { "type", "output_text" }, { "text", "" }, { "annotations", ojson::array() } } } }));
}

void response_builder::close(open_item & it, const std::string & text_raw, std::vector<ojson> & out) {
    if (it.index < 0 || it.done) return;
    it.done                = true;
    const std::string text = utf8_sanitize(text_raw);
    const bool        rs   = &it == &reasoning;
    const ojson       part = rs ? ojson{ { "type", "reasoning_text" }, { "text", text } }
                                : ojson{ { "type", "output_text" }, { "text", text }, { "annotations", ojson::array() } };
    out.push_back(make(rs ? "response.reasoning_text.done" : "response.output_text.done",
                       { { "item_id", it.id }, { "output_index", it.index }, { "content_index", 0 }, { "text", text } }));
    out.push_back(make("response.content_part.done", { { "item_id", it.id }, { "output_index", it.index }, { "content_index", 0 }, { "part", part } }));
    ojson & item     = output[(size_t) it.index];
    item["content"] = ojson::array({ part });
    if (!rs) item["status"] = "completed";
    out.push_back(make("response.output_item.done", { { "output_index", it.index }, { "item", item } }));
}

std::vector<ojson> response_builder::event(const ask_event & ev) {
    std::vector<ojson> out;
    if (ev.type == ask_event::AGENT_DELTA && ev.kind == AGENT_ANSWER && !ev.text.empty()) {
        // The answering agent of instant / thinking: its text is the reply itself.
        if (ev.delta == chat_event::REASONING) {
            if (reasoning.index < 0) open_reasoning(out);
            if (!reasoning.done) {
                reasoning.text += ev.text;
                out.push_back(make("response.reasoning_text.delta", { { "item_id", reasoning.id }, { "output_index", reasoning.index },
                                                                       { "content_index", 0 }, { "delta", utf8_sanitize(ev.text) } }));
            }
        } else {
            close(reasoning, reasoning.text, out);
            if (message.index < 0) open_message(out);
            message.text += ev.text;
            out.push_back(make("response.output_text.delta", { { "item_id", message.id }, { "output_index", message.index },
                                                                { "content_index", 0 }, { "delta", utf8_sanitize(ev.text) },
                                                                { "logprobs", ojson::array() } }));
        }
        return out;
    }
    if (muse_events) out.push_back(make("muse.event", { { "muse", trace_event_json(ev) } }));
    return out;
}

std::vector<ojson> response_builder::finish(const ask_result & r, ojson & final) {
    std::vector<ojson> out;
    // Reasoning first when nothing streamed it (a vote's or synthesis's, or none at all).
    if (reasoning.index < 0 && !r.reasoning.empty() && message.index < 0) open_reasoning(out);
    close(reasoning, r.reasoning.empty() ? reasoning.text : r.reasoning, out);
    if (message.index >= 0) {
        close(message, r.answer.empty() && !r.tool_calls.empty() ? message.text : r.answer, out);
    }
    for (const auto & tc : r.tool_calls) {
        const int idx = (int) output.size();
        ojson     item = { { "type", "function_call" }, { "id", "fc_" + random_hex(48) }, { "call_id", tc.id }, { "name", tc.name },
                           { "arguments", "" }, { "status", "in_progress" } };
        out.push_back(make("response.output_item.added", { { "output_index", idx }, { "item", item } }));
        out.push_back(make("response.function_call_arguments.delta", { { "item_id", item["id"] }, { "output_index", idx }, { "delta", tc.arguments } }));
        out.push_back(make("response.function_call_arguments.done", { { "item_id", item["id"] }, { "output_index", idx }, { "arguments", tc.arguments } }));
        item["arguments"] = tc.arguments;
        item["status"]    = "completed";
        output.push_back(item);
        out.push_back(make("response.output_item.done", { { "output_index", idx }, { "item", item } }));
    }
    if (message.index < 0 && r.tool_calls.empty()) {
        // A vote or a synthesis: the answer arrives whole, at the end.
        open_message(out);
        message.text = r.answer;
        out.push_back(make("response.output_text.delta", { { "item_id", message.id }, { "output_index", message.index }, { "content_index", 0 },
                                                            { "delta", utf8_sanitize(r.answer) }, { "logprobs", ojson::array() } }));
        close(message, r.answer, out);
    }
    const bool incomplete = r.finish == FINISH_LENGTH;
    skeleton["incomplete_details"] = incomplete ? ojson{ { "reason", "max_output_tokens" } } : ojson(nullptr);
    skeleton["usage"]              = response_usage(r);
    ojson muse = to_json(r);  // the run's trace, with what the route added (truncated_messages)
    if (skeleton.contains("muse") && skeleton["muse"].is_object()) {
        for (auto & [k, v] : skeleton["muse"].items()) muse[k] = v;
    }
    skeleton["muse"] = muse;
    final                          = response(incomplete ? "incomplete" : "completed");
    out.push_back(make(incomplete ? "response.incomplete" : "response.completed", { { "response", final } }));
    return out;
}

std::vector<ojson> response_builder::fail(const api_error & e) {
    std::vector<ojson> out;
    out.push_back(make("error", { { "code", e.code.empty() ? ojson(e.type) : ojson(e.code) }, { "message", e.message },
                                  { "param", e.param.empty() ? ojson(nullptr) : ojson(e.param) } }));
    skeleton["error"] = { { "code", e.code.empty() ? e.type : e.code }, { "message", e.message } };
    out.push_back(make("response.failed", { { "response", response("failed") } }));
    return out;
}

}  // namespace muse
