#include "openai-api.h"

#include "app/assistant.h"
#include "app/result-json.h"

#include "core/json-depth.h"
#include "core/limits.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace muse {

using json = nlohmann::json;

api_error bad_request(std::string param, std::string message) {
    api_error e;
    e.status  = 400;
    e.param   = std::move(param);
    e.message = std::move(message);
    return e;
}

ojson error_json(const api_error & e) {
    ojson err = { { "message", e.message }, { "type", e.type } };
    err["param"] = e.param.empty() ? ojson(nullptr) : ojson(e.param);
    err["code"]  = e.code.empty() ? ojson(nullptr) : ojson(e.code);
    return { { "error", err } };
}

api_error result_error(const error & e) {
    api_error out;
    out.message = e.message;
    switch (e.code) {
        case ERROR_INVALID_ARGUMENT:
        case ERROR_BAD_INPUT:
            out.status = 400;
            break;
        case ERROR_CONTEXT_OVERFLOW:
            out.status = 400;
            out.code   = "context_length_exceeded";
            break;
        case ERROR_NO_KV_SLOT:
            out.status = 503;
            out.type   = "server_error";
            out.code   = "kv_cache_full";
            break;
        case ERROR_NOT_FOUND:
            out.status = 404;
            out.code   = "not_found";
            break;
        case ERROR_STORAGE:
            out.status = 503;
            out.type   = "server_error";
            out.code   = "storage_unavailable";
            break;
        case ERROR_UNAVAILABLE:
            out.status = 503;
            out.type   = "server_error";
            out.code   = "backend_unavailable";
            break;
        default:
            out.status = 500;
            out.type   = "server_error";
            out.code   = error_code_name(e.code);
            break;
    }
    return out;
}

double api_max(const api_limits & lim, const limit & l) {
    double server = l.max;
    if (&l == &k_limit_max_tokens) server = lim.max_tokens;
    else if (&l == &k_limit_thinking_budget) server = lim.max_budget;
    else if (&l == &k_limit_planner_budget) server = lim.max_planner_budget;
    else if (&l == &k_limit_agents) server = lim.max_agents;
    else if (&l == &k_limit_n) server = lim.max_n;
    else if (&l == &k_limit_images) server = lim.max_images;
    else if (&l == &k_limit_messages) server = lim.max_messages;
    else if (&l == &k_limit_tools) server = lim.max_tools;
    else if (&l == &k_limit_attachments) server = lim.max_attachments;
    return std::min(server, l.max);
}

ojson limits_json(const api_limits & lim) {
    auto whole = [&](const limit & l) { return (int64_t) api_max(lim, l); };
    ojson modes = ojson::array(), efforts = ojson::array();
    for (const mode * m : all_modes()) modes.push_back(m->name());
    for (const effort_level & e : effort_levels()) efforts.push_back(e.name);
    ojson out = {
        { "object", "muse.limits" },
        { "modes", modes },
        { "reasoning_efforts", efforts },
        { "max_agents", whole(k_limit_agents) },
        { "max_thinking_budget", whole(k_limit_thinking_budget) },
        { "max_planner_budget", whole(k_limit_planner_budget) },
        { "max_tokens", whole(k_limit_max_tokens) },
        { "default_max_tokens", std::min<int64_t>(lim.default_max_tokens, whole(k_limit_max_tokens)) },
        { "max_n", whole(k_limit_n) },
        { "max_messages", whole(k_limit_messages) },
        { "max_tools", whole(k_limit_tools) },
        { "max_images", whole(k_limit_images) },
        { "max_attachments", whole(k_limit_attachments) },
        { "max_stop", whole(k_limit_stop) },
        { "max_stop_bytes", whole(k_limit_stop_bytes) },
        { "max_cache_salt_bytes", whole(k_limit_cache_salt) },
    };
    // Every number a request sets, with its range as the parser checks it (max_tokens is above).
    for (const limit * l : k_request_limits) {
        if (l->count || !l->in(FRONT_API) || out.contains(l->name)) continue;
        auto  n = [&](double v) { return l->integer ? ojson((int64_t) v) : ojson(v); };
        const double hi = api_max(lim, *l);
        ojson f = { { "min", n(l->min) }, { "max", n(hi) }, { "default", n(std::min(l->def, hi)) }, { "integer", l->integer } };
        if (l->min_open) f["min_exclusive"] = true;
        if (l->special) {
            f["special"]         = n(l->special_value);
            f["special_meaning"] = l->special;
        }
        out[l->name] = f;
    }
    return out;
}

namespace {

const char * type_name(const json & v) {
    switch (v.type()) {
        case json::value_t::null:            return "null";
        case json::value_t::boolean:         return "a boolean";
        case json::value_t::string:          return "a string";
        case json::value_t::array:           return "an array";
        case json::value_t::object:          return "an object";
        case json::value_t::number_float:
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "a number";
        default:                             return "something else";
    }
}

// obj[key] when it is a string, else "" (nlohmann's value() throws on another type).
std::string string_member(const json & obj, const char * key) {
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A JSON schema from a request (response_format, a tool's parameters): within the caps on
// nesting, size and alternatives (core/json-depth.h), checked here to name the field.
api_error check_schema(const json & schema, const std::string & param) {
    if (const std::string why = json_schema_problem(schema.dump()); !why.empty()) {
        return bad_request(param, param + " " + why);
    }
    return {};
}

std::string fmt_num(double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.10g", v);
    return buf;
}

// Reads an optional number field `key` within l's range (core/limits.h), its maximum lowered
// to `hi` where the server sets a lower cap; null counts as absent. Integers may be written
// 3.0, never 3.5.
api_error get_limited(const json & body, const char * key, const limit & l, double hi, bool & present, double & out) {
    present = false;
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) {
        return {};
    }
    limit lim = l;
    lim.max   = std::min(l.max, hi);
    const std::string what = std::string(key) + " must be " + (l.integer ? "an integer" : "a number") + " in " +
                             limit_range_text(lim) + ", got ";
    if (!it->is_number()) {
        return bad_request(key, what + type_name(*it));
    }
    const double v = it->get<double>();
    if (!limit_problem(lim, v).empty()) {
        return bad_request(key, what + it->dump());
    }
    present = true;
    out     = v;
    return {};
}

api_error get_limited(const json & body, const char * key, const api_limits & lim, const limit & l, bool & present, double & out) {
    return get_limited(body, key, l, api_max(lim, l), present, out);
}

api_error get_bool(const json & body, const char * key, bool & out) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) {
        return {};
    }
    if (!it->is_boolean()) {
        return bad_request(key, std::string(key) + " must be true or false, got " + type_name(*it));
    }
    out = it->get<bool>();
    return {};
}

api_error get_string(const json & body, const char * key, size_t max_len, bool & present, std::string & out) {
    present = false;
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) {
        return {};
    }
    if (!it->is_string()) {
        return bad_request(key, std::string(key) + " must be a string, got " + type_name(*it));
    }
    out = it->get<std::string>();
    if (out.size() > max_len) {
        return bad_request(key, std::string(key) + " is longer than " + std::to_string(max_len) + " bytes");
    }
    present = true;
    return {};
}

// A message's content: a string, null, or an array of parts (text, image_url).
api_error parse_content(const json & c, const std::string & where, bool allow_images, const api_limits & lim,
                        std::string & text, std::vector<std::string> & images) {
    if (c.is_null()) {
        return {};
    }
    if (c.is_string()) {
        text = c.get<std::string>();
        return {};
    }
    if (!c.is_array()) {
        return bad_request(where, where + " must be a string or an array of content parts, got " + type_name(c));
    }
    for (size_t i = 0; i < c.size(); ++i) {
        const json &      p  = c[i];
        const std::string pw = where + "[" + std::to_string(i) + "]";
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
            return bad_request(pw, pw + " must be an object with a string `type` (text or image_url)");
        }
        const std::string type = p["type"];
        if (type == "text") {
            if (!p.contains("text") || !p["text"].is_string()) {
                return bad_request(pw + ".text", pw + ".text must be a string");
            }
            if (!text.empty()) {
                text += "\n";
            }
            text += p["text"].get<std::string>();
        } else if (type == "image_url") {
            if (!allow_images) {
                return bad_request(pw, pw + ": images are accepted in user messages only");
            }
            const json * u = p.contains("image_url") ? &p["image_url"] : nullptr;
            std::string  url;
            if (u && u->is_string()) {
                url = u->get<std::string>();
            } else if (u && u->is_object() && u->contains("url") && (*u)["url"].is_string()) {
                url = (*u)["url"].get<std::string>();
            } else {
                return bad_request(pw + ".image_url", pw + ".image_url must be an object with a string `url`");
            }
            if ((int32_t) images.size() >= (int32_t) api_max(lim, k_limit_images)) {
                return bad_request(pw, "too many images: at most " + std::to_string((int32_t) api_max(lim, k_limit_images)) +
                                           " per request");
            }
            images.push_back(std::move(url));
        } else {
            return bad_request(pw + ".type", pw + ".type '" + type + "' is not supported (text or image_url)");
        }
    }
    return {};
}

bool valid_tool_name(const std::string & s) {
    return !s.empty() && s.size() <= 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum((unsigned char) c) || c == '_' || c == '-'; });
}

api_error parse_tools(const json & body, const api_limits & lim, ask_options & opt) {
    auto it = body.find("tools");
    if (it != body.end() && !it->is_null()) {
        if (!it->is_array()) {
            return bad_request("tools", "tools must be an array of {type: function, function: {name, description, parameters}}");
        }
        if ((int32_t) it->size() > (int32_t) api_max(lim, k_limit_tools)) {
            return bad_request("tools", "tools: at most " + std::to_string((int32_t) api_max(lim, k_limit_tools)) + " tools");
        }
        for (size_t i = 0; i < it->size(); ++i) {
            const json &      t = (*it)[i];
            const std::string w = "tools[" + std::to_string(i) + "]";
            if (!t.is_object() || string_member(t, "type") != "function" || !t.contains("function") || !t["function"].is_object()) {
                return bad_request(w, w + " must be {type: \"function\", function: {...}}");
            }
            const json & f = t["function"];
            if (!f.contains("name") || !f["name"].is_string() || !valid_tool_name(f["name"])) {
                return bad_request(w + ".function.name", w + ".function.name must be 1-64 letters, digits, _ or -");
            }
            chat_tool ct;
            ct.name = f["name"];
            if (f.contains("description") && !f["description"].is_null()) {
                if (!f["description"].is_string()) {
                    return bad_request(w + ".function.description", w + ".function.description must be a string");
                }
                ct.description = f["description"];
            }
            if (f.contains("parameters") && !f["parameters"].is_null()) {
                if (!f["parameters"].is_object()) {
                    return bad_request(w + ".function.parameters", w + ".function.parameters must be a JSON schema object");
                }
                if (api_error e = check_schema(f["parameters"], w + ".function.parameters")) {
                    return e;
                }
                ct.parameters = f["parameters"].dump();
            }
            // Muse: function.side_effects (true: calling it changes something; see README, Safety).
            if (f.contains("side_effects") && !f["side_effects"].is_null()) {
                if (!f["side_effects"].is_boolean()) {
                    return bad_request(w + ".function.side_effects", w + ".function.side_effects must be true or false");
                }
                ct.side_effects = f["side_effects"].get<bool>();
            }
            for (const auto & other : opt.client_tools) {
                if (other.name == ct.name) {
                    return bad_request(w + ".function.name", "tools: '" + ct.name + "' is defined twice");
                }
            }
            opt.client_tools.push_back(std::move(ct));
        }
    }
    auto tc = body.find("tool_choice");
    if (tc == body.end() || tc->is_null()) {
        return {};
    }
    if (tc->is_string()) {
        const std::string s = *tc;
        if (s != "auto" && s != "none" && s != "required") {
            return bad_request("tool_choice", "tool_choice must be auto, none, required or {type: function, function: {name}}, got '" + s + "'");
        }
        if (s == "required" && opt.client_tools.empty()) {
            return bad_request("tool_choice", "tool_choice is required but no tools were given");
        }
        opt.client_tool_choice = s;
        return {};
    }
    if (tc->is_object() && string_member(*tc, "type") == "function" && tc->contains("function") && (*tc)["function"].is_object() &&
        (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
        const std::string name = (*tc)["function"]["name"];
        std::vector<chat_tool> only;
        for (const auto & t : opt.client_tools) {
            if (t.name == name) {
                only.push_back(t);
            }
        }
        if (only.empty()) {
            return bad_request("tool_choice", "tool_choice names '" + name + "', which is not in tools");
        }
        opt.client_tools       = only;
        opt.client_tool_choice = "required";
        return {};
    }
    return bad_request("tool_choice", "tool_choice must be auto, none, required or {type: function, function: {name}}");
}

api_error parse_messages(const json & body, const api_limits & lim, chat_api_request & out) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) {
        return bad_request("messages", "messages must be a non-empty array of {role, content}");
    }
    if ((int32_t) it->size() > (int32_t) api_max(lim, k_limit_messages)) {
        return bad_request("messages", "messages: at most " + std::to_string((int32_t) api_max(lim, k_limit_messages)) +
                                           " messages");
    }
    bool has_user = false;
    for (size_t i = 0; i < it->size(); ++i) {
        const json &      m = (*it)[i];
        const std::string w = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) {
            return bad_request(w, w + " must be an object {role, content}");
        }
        if (!m.contains("role") || !m["role"].is_string()) {
            return bad_request(w + ".role", w + ".role must be system, developer, user, assistant or tool");
        }
        chat_message cm;
        cm.role = m["role"];
        if (cm.role == "developer") {
            cm.role = "system";
        }
        if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool") {
            return bad_request(w + ".role", w + ".role must be system, developer, user, assistant or tool, got '" + cm.role + "'");
        }
        if (cm.role != "assistant" && !m.contains("content")) {
            return bad_request(w + ".content", w + ".content is missing");
        }
        if (m.contains("content")) {
            if (api_error e = parse_content(m["content"], w + ".content", cm.role == "user", lim, cm.content, out.image_urls)) {
                return e;
            }
        }
        if (m.contains("name") && m["name"].is_string()) {
            cm.name = m["name"];
        }
        if (cm.role == "assistant") {
            if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) {
                cm.reasoning_content = m["reasoning_content"];
            }
            if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
                const json & calls = m["tool_calls"];
                if (!calls.is_array()) {
                    return bad_request(w + ".tool_calls", w + ".tool_calls must be an array");
                }
                for (size_t k = 0; k < calls.size(); ++k) {
                    const json &      c  = calls[k];
                    const std::string cw = w + ".tool_calls[" + std::to_string(k) + "]";
                    if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
                        !c["function"].contains("name") || !c["function"]["name"].is_string()) {
                        return bad_request(cw, cw + " must be {id, type: function, function: {name, arguments}}");
                    }
                    chat_tool_call tc;
                    tc.id   = string_member(c, "id");
                    tc.name = c["function"]["name"];
                    const json & a = c["function"].contains("arguments") ? c["function"]["arguments"] : json("{}");
                    tc.arguments   = a.is_string() ? a.get<std::string>() : a.dump();
                    cm.tool_calls.push_back(std::move(tc));
                }
            }
        }
        if (cm.role == "tool") {
            if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()) {
                return bad_request(w + ".tool_call_id", w + ".tool_call_id must be the id of the call this answers");
            }
            cm.tool_call_id = m["tool_call_id"];
        }
        has_user = has_user || (cm.role == "user" && !cm.content.empty());
        out.ask.messages.push_back(std::move(cm));
    }
    if (!has_user) {
        return bad_request("messages", "messages needs a user message with text");
    }
    return {};
}

}  // namespace

api_error parse_chat_body(const std::string & text, const api_limits & lim, chat_api_request & out) {
    std::string where;
    if (json_text_depth(text, k_max_json_depth, &where) > k_max_json_depth) {
        return bad_request(where, (where.empty() ? std::string("the request body") : where) + " nests more than " +
                                      std::to_string(k_max_json_depth) + " levels of arrays and objects; send a flatter body");
    }
    const json body = json::parse(text, nullptr, false);
    if (body.is_discarded()) {
        return bad_request("", "the request body is not valid JSON (or not UTF-8)");
    }
    try {
        return parse_chat_request(body, lim, out);
    } catch (const json::exception & e) {
        // A field of an unexpected type that a check above missed: still the client's error.
        return bad_request("", std::string("malformed request: ") + e.what());
    }
}

bool effort_mode(const std::string & effort, ask_mode & mode, int32_t & budget) {
    const effort_level * e = find_effort(effort);  // the mode registry's mapping
    if (!e) return false;
    mode   = e->mode;
    budget = e->budget;
    return true;
}

api_error parse_chat_request(const json & body, const api_limits & lim, chat_api_request & out) {
    if (!body.is_object()) {
        return bad_request("", "the request body must be a JSON object");
    }
    out = chat_api_request{};  // ask_options' defaults: sampling, built-in tools
    ask_options & opt = out.ask.opt;
    bool   present    = false;
    double d          = 0;

    if (api_error e = get_string(body, "model", 256, present, out.model)) return e;
    // vLLM's cache_salt: the client's own partition of its prompt cache. The server puts the
    // authenticated user in front of it (scoped_cache_salt), so it never reaches another user's.
    if (api_error e = get_string(body, "cache_salt", (size_t) k_limit_cache_salt.max, present, out.ask.cache_salt)) return e;
    if (api_error e = get_string(body, "conversation", 128, present, out.conversation_id)) return e;
    if (present && out.conversation_id.empty()) return bad_request("conversation", "conversation must be a conversation id (conv_...)");
    if (api_error e = parse_messages(body, lim, out)) return e;

    if (api_error e = get_limited(body, "temperature", lim, k_limit_temperature, present, d)) return e;
    if (present) opt.sampling.temperature = (float) d;
    if (api_error e = get_limited(body, "top_p", lim, k_limit_top_p, present, d)) return e;
    if (present) opt.sampling.top_p = (float) d;
    if (api_error e = get_limited(body, "top_k", lim, k_limit_top_k, present, d)) return e;
    if (present) opt.sampling.top_k = (int32_t) d;
    if (api_error e = get_limited(body, "min_p", lim, k_limit_min_p, present, d)) return e;
    if (present) opt.sampling.min_p = (float) d;
    if (api_error e = get_limited(body, "repeat_penalty", lim, k_limit_repeat_penalty, present, d)) return e;
    if (present) opt.sampling.repeat_penalty = (float) d;
    if (api_error e = get_limited(body, "frequency_penalty", lim, k_limit_frequency_penalty, present, d)) return e;
    if (present) opt.sampling.frequency_penalty = (float) d;
    if (api_error e = get_limited(body, "presence_penalty", lim, k_limit_presence_penalty, present, d)) return e;
    if (present) opt.sampling.presence_penalty = (float) d;
    if (api_error e = get_limited(body, "seed", lim, k_limit_seed, present, d)) return e;
    if (present) opt.sampling.seed = d < 0 ? 0xFFFFFFFFu : (uint32_t) d;  // -1: random

    // -1: as many as this server allows.
    int64_t max_tokens = lim.default_max_tokens;
    for (const char * key : { "max_tokens", "max_completion_tokens" }) {
        if (api_error e = get_limited(body, key, lim, k_limit_max_tokens, present, d)) return e;
        if (present) max_tokens = d < 0 ? (int64_t) api_max(lim, k_limit_max_tokens) : (int64_t) d;
    }
    opt.answer_tokens = (int32_t) max_tokens;

    if (api_error e = get_limited(body, "n", lim, k_limit_n, present, d)) return e;
    if (present) out.n = (int32_t) d;

    bool logprobs = false;
    if (api_error e = get_bool(body, "logprobs", logprobs)) return e;
    if (logprobs) return bad_request("logprobs", "logprobs is not supported by Muse; leave it out");
    if (api_error e = get_bool(body, "stream", out.stream)) return e;
    if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
        if (!so->is_object()) return bad_request("stream_options", "stream_options must be an object");
        if (api_error e = get_bool(*so, "include_usage", out.include_usage)) {
            e.param = "stream_options.include_usage";
            return e;
        }
    }

    // stop: a string or an array of strings.
    if (auto st = body.find("stop"); st != body.end() && !st->is_null()) {
        const std::string max_stops = std::to_string((int) k_limit_stop.max);
        std::vector<std::string> stops;
        if (st->is_string()) {
            stops.push_back(*st);
        } else if (st->is_array() && st->size() <= (size_t) k_limit_stop.max) {
            for (const auto & s : *st) {
                if (!s.is_string()) return bad_request("stop", "stop must be a string or an array of strings");
                stops.push_back(s);
            }
        } else {
            return bad_request("stop", "stop must be a string or an array of at most " + max_stops + " strings");
        }
        for (const auto & s : stops) {
            if (!k_limit_stop_bytes.contains((double) s.size())) {
                return bad_request("stop", "each stop string must be " + fmt_num(k_limit_stop_bytes.min) + "-" +
                                               fmt_num(k_limit_stop_bytes.max) + " bytes, got " + std::to_string(s.size()));
            }
        }
        opt.stop = stops;
    }

    // Modes: `mode` (Muse), `reasoning_effort` (OpenAI), `thinking_budget`, `agents`.
    std::string mode_name, effort;
    if (api_error e = get_string(body, "mode", 32, present, mode_name)) return e;
    if (present) {
        if (!parse_ask_mode(mode_name, opt.mode)) {
            return bad_request("mode", "mode must be " + mode_name_list(all_modes()) + ", got '" + mode_name + "'");
        }
        out.mode_given = opt.mode != MODE_AUTO;
    }
    if (api_error e = get_string(body, "reasoning_effort", 32, present, effort)) return e;
    if (present) {
        ask_mode em;
        int32_t  budget = 0;
        if (!effort_mode(effort, em, budget)) {
            return bad_request("reasoning_effort", "reasoning_effort must be " + effort_name_list() + ", got '" + effort + "'");
        }
        if (!out.mode_given) {
            opt.mode       = em;
            out.mode_given = true;
        }
        opt.budget = std::min(budget, (int32_t) api_max(lim, k_limit_thinking_budget));
    }
    if (api_error e = get_limited(body, "thinking_budget", lim, k_limit_thinking_budget, present, d)) return e;
    if (present) opt.budget = (int32_t) d;
    opt.budget = std::min(opt.budget, (int32_t) api_max(lim, k_limit_thinking_budget));
    if (api_error e = get_limited(body, "agents", lim, k_limit_agents, present, d)) return e;
    if (present) opt.agents = (int32_t) d;
    opt.agents = std::min(opt.agents, (int32_t) api_max(lim, k_limit_agents));
    if (api_error e = get_bool(body, "planner", opt.planner)) return e;
    if (api_error e = get_limited(body, "planner_budget", lim, k_limit_planner_budget, present, d)) return e;
    if (present) opt.plan_tokens = (int32_t) d;
    opt.plan_tokens = std::min(opt.plan_tokens, (int32_t) api_max(lim, k_limit_planner_budget));
    if (api_error e = get_bool(body, "prune", opt.prune)) return e;
    if (api_error e = get_bool(body, "refine", opt.refine)) return e;
    if (api_error e = get_bool(body, "verify", opt.verify)) return e;
    std::string vote_name;
    if (api_error e = get_string(body, "vote", 32, present, vote_name)) return e;
    if (present && !parse_vote_rule(vote_name, opt.vote)) {
        return bad_request("vote", "vote must be weighted or majority, got '" + vote_name + "'");
    }

    // response_format
    if (auto rf = body.find("response_format"); rf != body.end() && !rf->is_null()) {
        const std::string type = rf->is_object() ? string_member(*rf, "type") : "";
        if (type == "json_object") {
            opt.json_schema = R"({"type":"object"})";
        } else if (type == "json_schema") {
            const json * js = rf->contains("json_schema") ? &(*rf)["json_schema"] : nullptr;
            if (!js || !js->is_object() || !js->contains("schema") || !(*js)["schema"].is_object()) {
                return bad_request("response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON schema object");
            }
            if (api_error e = check_schema((*js)["schema"], "response_format.json_schema.schema")) {
                return e;
            }
            opt.json_schema = (*js)["schema"].dump();
        } else if (type != "text") {
            return bad_request("response_format.type", "response_format.type must be text, json_object or json_schema");
        }
    }

    if (api_error e = parse_tools(body, lim, opt)) return e;

    // Uploaded files.
    if (auto at = body.find("attachments"); at != body.end() && !at->is_null()) {
        if (!at->is_array() || (int32_t) at->size() > (int32_t) api_max(lim, k_limit_attachments)) {
            return bad_request("attachments", "attachments must be an array of at most " +
                                                  std::to_string((int32_t) api_max(lim, k_limit_attachments)) +
                                                  " file ids from POST /v1/files");
        }
        for (const auto & f : *at) {
            std::string id;
            if (f.is_string()) id = f;
            else if (f.is_object() && f.contains("file_id") && f["file_id"].is_string()) id = f["file_id"];
            else return bad_request("attachments", "attachments must hold file ids (strings) from POST /v1/files");
            out.file_ids.push_back(id);
        }
    }

    // Combinations: the rules every front end shares (app/assistant.h).
    ask_refusal why;
    if (error e = check_ask_rules(out.ask, out.n, (int32_t) api_max(lim, k_limit_n), &why)) {
        const std::string param = why.field == "json_schema" ? "response_format" : why.field;
        return bad_request(param, e.message);
    }
    return {};
}

const char * openai_finish_reason(finish_reason f) {
    switch (f) {
        case FINISH_LENGTH:     return "length";
        case FINISH_TOOL_CALLS: return "tool_calls";
        default:                return "stop";
    }
}

ojson usage_json(const std::vector<ask_result> & results) {
    int64_t prompt = 0, cached = 0, completion = 0;
    for (const auto & r : results) {
        prompt += r.use.prompt_tokens_prefilled + r.use.prompt_tokens_reused;
        cached += r.use.prompt_tokens_reused;
        completion += r.use.completion_tokens;
    }
    return { { "prompt_tokens", prompt },
             { "completion_tokens", completion },
             { "total_tokens", prompt + completion },
             { "prompt_tokens_details", { { "cached_tokens", cached } } } };
}

static ojson tool_calls_json(const std::vector<chat_tool_call> & calls, bool with_index) {
    ojson arr = ojson::array();
    for (size_t k = 0; k < calls.size(); ++k) {
        ojson c;
        if (with_index) c["index"] = k;
        c["id"]       = calls[k].id;
        c["type"]     = "function";
        c["function"] = { { "name", calls[k].name }, { "arguments", calls[k].arguments } };
        arr.push_back(c);
    }
    return arr;
}

ojson completion_json(const std::string & id, int64_t created, const std::string & model,
                      const std::vector<ask_result> & results) {
    ojson choices = ojson::array();
    for (size_t i = 0; i < results.size(); ++i) {
        const ask_result & r = results[i];
        ojson msg = { { "role", "assistant" } };
        msg["content"] = r.tool_calls.empty() || !r.answer.empty() ? ojson(r.answer) : ojson(nullptr);
        msg["reasoning_content"] = r.reasoning;
        if (!r.tool_calls.empty()) {
            msg["tool_calls"] = tool_calls_json(r.tool_calls, false);
        }
        ojson c = { { "index", i }, { "message", msg }, { "logprobs", nullptr }, { "finish_reason", openai_finish_reason(r.finish) } };
        if (results.size() > 1) {
            c["muse"] = to_json(r);
        }
        choices.push_back(c);
    }
    ojson out = { { "id", id }, { "object", "chat.completion" }, { "created", created }, { "model", model },
                  { "system_fingerprint", "muse" }, { "choices", choices }, { "usage", usage_json(results) } };
    if (results.size() == 1) {
        out["muse"] = to_json(results[0]);
    }
    return out;
}

chunk_builder::chunk_builder(std::string id_, int64_t created_, std::string model_, int n) :
    id(std::move(id_)), model(std::move(model_)), created(created_), modes(n, MODE_INSTANT), streamed(n) {}

ojson chunk_builder::chunk(int choice, ojson delta, const char * finish) const {
    ojson c = { { "index", choice }, { "delta", std::move(delta) }, { "logprobs", nullptr } };
    c["finish_reason"] = finish ? ojson(finish) : ojson(nullptr);
    return { { "id", id }, { "object", "chat.completion.chunk" }, { "created", created }, { "model", model },
             { "system_fingerprint", "muse" }, { "choices", ojson::array({ c }) } };
}

std::vector<ojson> chunk_builder::start() {
    std::vector<ojson> out;
    for (size_t i = 0; i < modes.size(); ++i) {
        out.push_back(chunk((int) i, { { "role", "assistant" }, { "content", "" } }));
    }
    return out;
}

ojson trace_event_json(const ask_event & ev) {
    switch (ev.type) {
        case ask_event::MODE:
            return { { "event", "mode" }, { "mode", ev.text }, { "reason", ev.detail } };
        case ask_event::PLAN: {
            ojson plan = ojson::parse(ev.text, nullptr, false);
            return { { "event", "plan" }, { "plan", plan.is_discarded() ? ojson(ev.text) : plan } };
        }
        case ask_event::AGENT_START:
            return { { "event", "agent_start" }, { "agent", ev.agent }, { "kind", agent_kind_name(ev.kind) }, { "role", ev.role } };
        case ask_event::AGENT_DELTA: {
            ojson m = { { "event", "delta" }, { "agent", ev.agent }, { "kind", agent_kind_name(ev.kind) },
                        { "type", ev.delta == chat_event::REASONING ? "reasoning" : "content" }, { "tokens", ev.tokens } };
            if (ev.kind != AGENT_ANSWER) m["text"] = ev.text;  // the answering agent's text is the reply itself
            return m;
        }
        case ask_event::AGENT_TOOL:
            return { { "event", "tool" }, { "agent", ev.agent }, { "kind", agent_kind_name(ev.kind) }, { "text", ev.text } };
        case ask_event::AGENT_END:
            return { { "event", "agent_end" }, { "agent", ev.agent }, { "kind", agent_kind_name(ev.kind) },
                     { "state", ev.detail }, { "tokens", ev.tokens }, { "answer", ev.text } };
        case ask_event::AGGREGATE:
            return { { "event", "aggregate" }, { "text", ev.text } };
    }
    return ojson::object();
}

std::vector<ojson> chunk_builder::event(int choice, const ask_event & ev) {
    ojson c = chunk(choice, ojson::object());
    if (ev.type == ask_event::MODE) parse_ask_mode(ev.text, modes[choice]);
    if (ev.type == ask_event::AGENT_DELTA && ev.kind == AGENT_ANSWER) {
        const bool reasoning = ev.delta == chat_event::REASONING;
        c["choices"][0]["delta"][reasoning ? "reasoning_content" : "content"] = ev.text;
        if (!reasoning) streamed[choice] += ev.text;
    }
    c["muse"] = trace_event_json(ev);
    return { c };
}

std::vector<ojson> chunk_builder::finish(int choice, const ask_result & r) {
    std::vector<ojson> out;
    if (streamed[choice].empty() && !r.answer.empty()) {
        out.push_back(chunk(choice, { { "content", r.answer } }));  // vote or synthesis: the answer at the end
    }
    if (!r.tool_calls.empty()) {
        out.push_back(chunk(choice, { { "tool_calls", tool_calls_json(r.tool_calls, true) } }));
    }
    ojson last   = chunk(choice, ojson::object(), openai_finish_reason(r.finish));
    last["muse"] = { { "event", "done" }, { "result", to_json(r) } };
    out.push_back(last);
    return out;
}

ojson chunk_builder::usage(const std::vector<ask_result> & results) const {
    return { { "id", id }, { "object", "chat.completion.chunk" }, { "created", created }, { "model", model },
             { "system_fingerprint", "muse" }, { "choices", ojson::array() }, { "usage", usage_json(results) } };
}

}  // namespace muse
