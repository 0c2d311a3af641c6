// OpenAI's Conversations API on the data directory's store: /v1/conversations and its items.
// Every lookup is the user's own: another user's ids answer 404, as ids that do not exist.
// Muse's extensions: GET /v1/conversations (the user's conversations, newest first; `limit`,
// `search`), and `metadata.title` as the conversation's title (the web chat's sidebar).

#include "server-impl.h"

#include "core/json-depth.h"
#include "core/utf8.h"

#include <set>

namespace muse {

namespace {

constexpr int k_max_items_per_post = 20;  // as OpenAI

ojson conversation_json(const conversation_record & c) {
    ojson meta = ojson::parse(c.metadata_json, nullptr, false);
    if (!meta.is_object()) meta = ojson::object();
    return { { "id", c.id }, { "object", "conversation" }, { "created_at", c.created_at / 1000 }, { "metadata", meta } };
}

ojson item_json(const item_record & it) {
    ojson content = ojson::parse(it.content_json, nullptr, false);
    if (!content.is_array()) content = ojson::array();
    if (it.type == "message") {
        ojson j = { { "type", "message" }, { "id", it.id }, { "status", "completed" }, { "role", it.role }, { "content", content } };
        // Muse's additions, for a client that shows a stored turn as it was answered (the web chat).
        if (!it.reasoning.empty()) j["reasoning"] = it.reasoning;
        if (!it.trace_json.empty()) {
            ojson trace = ojson::parse(it.trace_json, nullptr, false);
            if (trace.is_object()) j["muse"] = std::move(trace);
        }
        j["created_at"] = it.created_at / 1000;
        return j;
    }
    // Other items keep the object they were given, stored as the one element of content.
    ojson j = content.empty() || !content[0].is_object() ? ojson::object() : content[0];
    j["type"]   = it.type;
    j["id"]     = it.id;
    j["status"] = "completed";
    return j;
}

// metadata: at most 16 string values, keys up to 64 bytes, values up to 512 (OpenAI's rules).
api_error parse_metadata(const ojson & m, std::string & json_out, std::string & title) {
    if (m.is_null()) return {};
    if (!m.is_object()) return bad_request("metadata", "metadata must be an object of strings");
    if (m.size() > 16) return bad_request("metadata", "metadata has at most 16 keys, got " + std::to_string(m.size()));
    for (auto it = m.begin(); it != m.end(); ++it) {
        if (it.key().size() > 64) return bad_request("metadata", "a metadata key is at most 64 bytes");
        if (!it.value().is_string()) return bad_request("metadata." + utf8_head(it.key(), 64), "metadata values are strings");
        if (it.value().get<std::string>().size() > 512) {
            return bad_request("metadata." + utf8_head(it.key(), 64), "a metadata value is at most 512 bytes");
        }
    }
    json_out = m.dump();
    if (m.contains("title")) title = m["title"].get<std::string>();
    return {};
}

// One input item as the store keeps it; `where` names it in errors ("items[2]").
api_error parse_item(const ojson & j, const std::string & where, item_record & it) {
    if (!j.is_object()) return bad_request(where, where + " must be an object");
    const std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "message";
    if (type == "message") {
        static const std::set<std::string> roles = { "user", "assistant", "system", "developer" };
        if (!j.contains("role") || !j["role"].is_string() || !roles.count(j["role"].get<std::string>())) {
            return bad_request(where + ".role", where + ".role must be user, assistant, system or developer");
        }
        it.type = "message";
        it.role = j["role"].get<std::string>();
        const char * text_type = it.role == "assistant" ? "output_text" : "input_text";
        ojson        parts     = ojson::array();
        if (!j.contains("content")) return bad_request(where + ".content", where + " needs content");
        const ojson & c = j["content"];
        if (c.is_string()) {
            parts.push_back({ { "type", text_type }, { "text", c } });
            it.text = c.get<std::string>();
        } else if (c.is_array()) {
            for (size_t k = 0; k < c.size(); ++k) {
                const std::string pw = where + ".content[" + std::to_string(k) + "]";
                if (!c[k].is_object() || !c[k].contains("type") || !c[k]["type"].is_string()) {
                    return bad_request(pw, pw + " must be an object with a type");
                }
                const std::string pt = c[k]["type"].get<std::string>();
                if (pt == "input_text" || pt == "output_text") {
                    if (!c[k].contains("text") || !c[k]["text"].is_string()) return bad_request(pw + ".text", pw + ".text must be a string");
                    ojson p = { { "type", pt }, { "text", c[k]["text"] } };
                    if (pt == "output_text") p["annotations"] = ojson::array();
                    parts.push_back(p);
                    it.text += (it.text.empty() ? "" : "\n") + c[k]["text"].get<std::string>();
                } else if (pt == "input_image" || pt == "input_file") {
                    ojson p = { { "type", pt } };
                    for (const char * k2 : { "file_id", "image_url", "detail", "filename" }) {
                        if (c[k].contains(k2)) {
                            if (!c[k][k2].is_string()) return bad_request(pw + "." + k2, pw + "." + k2 + " must be a string");
                            p[k2] = c[k][k2];
                        }
                    }
                    parts.push_back(p);
                } else {
                    return bad_request(pw + ".type", pw + ".type must be input_text, output_text, input_image or input_file, got '" +
                                                         utf8_head(pt, 40) + "'");
                }
            }
        } else {
            return bad_request(where + ".content", where + ".content must be a string or an array of parts");
        }
        it.content_json = parts.dump();
    } else if (type == "function_call" || type == "function_call_output") {
        const char * need = type == "function_call" ? "arguments" : "output";
        for (const char * k : { "call_id", need }) {
            if (!j.contains(k) || !j[k].is_string()) return bad_request(where + "." + k, where + "." + k + " must be a string");
        }
        if (type == "function_call" && (!j.contains("name") || !j["name"].is_string())) {
            return bad_request(where + ".name", where + ".name must be a string");
        }
        ojson keep = j;
        keep.erase("id");
        keep.erase("status");
        it.type         = type;
        it.content_json = ojson::array({ keep }).dump();
        it.text         = type == "function_call_output" ? j["output"].get<std::string>() : "";
    } else {
        return bad_request(where + ".type", where + ".type must be message, function_call or function_call_output, got '" +
                                                utf8_head(type, 40) + "'");
    }
    if (!utf8_valid(it.text)) return bad_request(where, where + " is not valid UTF-8");
    return {};
}

// ?limit=N, 1-100 (default: what `limit` holds); false, with the 400 sent, when it is not.
bool query_limit(const http::request & req, http::response & res, int32_t & limit) {
    auto it = req.query.find("limit");
    if (it == req.query.end()) return true;
    char *     end = nullptr;
    const long v   = strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || !end || *end || v < 1 || v > 100) {
        send_error(res, bad_request("limit", "limit must be an integer in [1, 100]"));
        return false;
    }
    limit = (int32_t) v;
    return true;
}

api_error store_error(const error & e) {
    return result_error(e);
}

}  // namespace

void server::impl::routes_privacy() {
    // Everything stored for the caller, as one JSON document.
    svr.route("GET", "/v1/users/me/export", counted([this](http::request & req, http::response & res) {
        std::string uid, doc;
        if (!db) return send_error(res, make_error(503, "nothing is stored without a data directory (--data-dir)", "server_error", "no_data_dir"));
        if (error e = files.user_id(req.user, uid)) return send_error(res, store_error(e));
        if (error e = db->export_user(uid, doc)) return send_error(res, store_error(e));
        res.set_header("Content-Disposition", "attachment; filename=\"muse-export.json\"");
        res.set_content(doc, "application/json");
    }));
    // Erases the caller and everything stored for them, for real (store.h: erase_user).
    svr.route("DELETE", "/v1/users/me", counted([this](http::request & req, http::response & res) {
        std::string uid;
        if (!db) return send_error(res, make_error(503, "nothing is stored without a data directory (--data-dir)", "server_error", "no_data_dir"));
        if (error e = files.user_id(req.user, uid)) return send_error(res, store_error(e));
        if (error e = db->erase_user(uid, req.user)) return send_error(res, store_error(e));
        files.forget(req.user);
        {
            std::lock_guard<std::mutex> lk(quota_mu);
            recent.erase(req.user);
        }
        res.set_content(wire(ojson{ { "id", uid }, { "object", "user.deleted" }, { "deleted", true } }), "application/json");
    }));
}

void server::impl::routes_admin() {
    // Only a store user marked admin (muse users add NAME --admin), signed in with their own
    // store key: an --api-key user of the same name is not that user.
    auto admin_of = [this](http::request & req, http::response & res, user_record & me) {
        if (!db) {
            send_error(res, make_error(503, "users are kept in the data directory: start muse serve with --data-dir", "server_error", "no_data_dir"));
            return false;
        }
        const std::string key = bearer_token(req);
        if (key.empty() || db->find_user_by_key(key_digest(key), me) || !me.admin) {
            send_error(res, make_error(403, "managing users needs an admin's key (muse users add NAME --admin)", "permission_error", "admin_required"));
            return false;
        }
        return true;
    };
    auto user_json = [](const user_record & u) {
        return ojson{ { "id", u.id }, { "object", "user" }, { "name", u.name }, { "admin", u.admin }, { "created_at", u.created_at / 1000 } };
    };
    svr.route("GET", "/v1/admin/users", counted([=, this](http::request & req, http::response & res) {
        user_record me;
        if (!admin_of(req, res, me)) return;
        std::vector<user_record> users;
        if (error e = db->list_users(users)) return send_error(res, store_error(e));
        ojson data = ojson::array();
        for (const auto & u : users) data.push_back(user_json(u));
        res.set_content(wire(ojson{ { "object", "list" }, { "data", data } }), "application/json");
    }));
    svr.route("POST", "/v1/admin/users", counted([=, this](http::request & req, http::response & res) {
        user_record me;
        if (!admin_of(req, res, me)) return;
        const ojson body = ojson::parse(req.body.size() <= 4096 ? req.body : std::string(), nullptr, false);
        if (!body.is_object() || !body.contains("name") || !body["name"].is_string()) {
            return send_error(res, bad_request("name", "send {\"name\": \"NAME\", \"admin\": false}"));
        }
        if (body.contains("admin") && !body["admin"].is_boolean()) return send_error(res, bad_request("admin", "admin must be true or false"));
        const std::string key = new_api_key();
        user_record       u;
        if (error e = db->add_user(body["name"].get<std::string>(), body.value("admin", false), key_digest(key), u)) {
            return send_error(res, e.code == ERROR_INVALID_ARGUMENT ? bad_request("name", e.message) : store_error(e));
        }
        db->audit(me.name, "user_add_http", u.id, u.name);
        ojson j      = user_json(u);
        j["api_key"] = key;  // shown once: only its digest is stored
        res.set_content(wire(j), "application/json");
    }));
    svr.route("DELETE", "/v1/admin/users/:name", counted([=, this](http::request & req, http::response & res) {
        user_record me, u;
        if (!admin_of(req, res, me)) return;
        if (error e = db->find_user_by_name(req.params.at("name"), u)) return send_error(res, store_error(e));
        if (error e = db->erase_user(u.id, me.name)) return send_error(res, store_error(e));
        files.forget(u.name);
        res.set_content(wire(ojson{ { "id", u.id }, { "object", "user.deleted" }, { "deleted", true } }), "application/json");
    }));
    svr.route("POST", "/v1/admin/users/:name/quota", counted([=, this](http::request & req, http::response & res) {
        user_record me, u;
        if (!admin_of(req, res, me)) return;
        if (error e = db->find_user_by_name(req.params.at("name"), u)) return send_error(res, store_error(e));
        const ojson  body = ojson::parse(req.body.size() <= 4096 ? req.body : std::string(), nullptr, false);
        quota_record q;
        if (error e = db->get_quota(u.id, q)) return send_error(res, store_error(e));
        if (!body.is_object()) return send_error(res, bad_request("", "send {\"requests_per_minute\": N, \"tokens_per_day\": N}"));
        for (const char * k : { "requests_per_minute", "tokens_per_day" }) {
            if (!body.contains(k)) continue;
            if (!body[k].is_number_integer()) return send_error(res, bad_request(k, std::string(k) + " must be an integer (0 = unlimited)"));
            (std::string(k) == "requests_per_minute" ? q.requests_per_minute : q.tokens_per_day) = body[k].get<int64_t>();
        }
        if (error e = db->set_quota(u.id, q, me.name)) {
            return send_error(res, e.code == ERROR_INVALID_ARGUMENT ? bad_request("quota", e.message) : store_error(e));
        }
        res.set_content(wire(ojson{ { "user", u.name }, { "requests_per_minute", q.requests_per_minute }, { "tokens_per_day", q.tokens_per_day } }),
                        "application/json");
    }));
}

void server::impl::routes_conversations() {
    // The store's id of the request's user, or a 503 when there is no store.
    auto owner = [this](http::request & req, http::response & res, std::string & uid) {
        if (!db) {
            send_error(res, make_error(503, "conversations are kept in the data directory: start muse serve with --data-dir", "server_error",
                                       "no_data_dir"));
            return false;
        }
        if (error e = files.user_id(req.user, uid)) {
            send_error(res, store_error(e));
            return false;
        }
        return true;
    };
    auto body_json = [](http::request & req, http::response & res, ojson & out) {
        std::string where;
        if (req.body.empty()) {
            out = ojson::object();
            return true;
        }
        if (json_text_depth(req.body, k_max_json_depth, &where) > k_max_json_depth) {
            send_error(res, bad_request(where, "the request body nests more than " + std::to_string(k_max_json_depth) + " levels"));
            return false;
        }
        out = ojson::parse(req.body, nullptr, false);
        if (out.is_discarded() || !out.is_object()) {
            send_error(res, bad_request("", "the request body must be a JSON object"));
            return false;
        }
        return true;
    };
    auto parse_items = [](const ojson & arr, std::vector<item_record> & items, http::response & res) {
        if (!arr.is_array()) {
            send_error(res, bad_request("items", "items must be an array"));
            return false;
        }
        if ((int) arr.size() > k_max_items_per_post) {
            send_error(res, bad_request("items", "at most " + std::to_string(k_max_items_per_post) + " items at once, got " +
                                                     std::to_string(arr.size())));
            return false;
        }
        for (size_t i = 0; i < arr.size(); ++i) {
            item_record it;
            it.author = "";
            if (api_error e = parse_item(arr[i], "items[" + std::to_string(i) + "]", it)) {
                send_error(res, e);
                return false;
            }
            items.push_back(std::move(it));
        }
        return true;
    };
    auto list_json = [](const std::vector<item_record> & items, bool has_more) {
        ojson data = ojson::array();
        for (const auto & it : items) data.push_back(item_json(it));
        return ojson{ { "object", "list" }, { "data", data }, { "first_id", items.empty() ? ojson(nullptr) : ojson(items.front().id) },
                      { "last_id", items.empty() ? ojson(nullptr) : ojson(items.back().id) }, { "has_more", has_more } };
    };

    svr.route("POST", "/v1/conversations", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        ojson       body;
        if (!owner(req, res, uid) || !body_json(req, res, body)) return;
        std::string meta = "{}", title;
        if (api_error e = parse_metadata(body.value("metadata", ojson()), meta, title)) return send_error(res, e);
        std::vector<item_record> items;
        if (body.contains("items") && !body["items"].is_null() && !parse_items(body["items"], items, res)) return;
        conversation_record c;
        if (error e = db->create_conversation(uid, title, meta, c)) return send_error(res, store_error(e));
        if (!items.empty()) {
            if (error e = db->append_items(uid, c.id, items)) {
                db->delete_conversation(uid, c.id);  // all or nothing
                return send_error(res, store_error(e));
            }
        }
        res.set_content(wire(conversation_json(c)), "application/json");
    }));
    svr.route("GET", "/v1/conversations", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        int32_t limit = 20;
        if (!query_limit(req, res, limit)) return;
        ojson data = ojson::array();
        if (auto s = req.query.find("search"); s != req.query.end() && !s->second.empty()) {
            std::vector<search_hit> hits;
            if (error e = db->search(uid, s->second, limit, hits)) return send_error(res, store_error(e));
            std::set<std::string> seen;
            for (const auto & h : hits) {
                conversation_record c;
                if (!seen.insert(h.conversation_id).second || db->get_conversation(uid, h.conversation_id, c)) continue;
                ojson j       = conversation_json(c);
                j["title"]    = c.title;
                j["snippet"]  = h.snippet;
                j["updated_at"] = c.updated_at / 1000;
                data.push_back(j);
            }
        } else {
            std::vector<conversation_record> cs;
            if (error e = db->list_conversations(uid, limit, 0, cs)) return send_error(res, store_error(e));
            for (const auto & c : cs) {
                ojson j         = conversation_json(c);
                j["title"]      = c.title;
                j["updated_at"] = c.updated_at / 1000;
                j["items"]      = c.items;
                data.push_back(j);
            }
        }
        res.set_content(wire(ojson{ { "object", "list" }, { "data", data }, { "has_more", false } }), "application/json");
    }));
    svr.route("GET", "/v1/conversations/:id", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        conversation_record c;
        if (error e = db->get_conversation(uid, req.params.at("id"), c)) return send_error(res, store_error(e));
        res.set_content(wire(conversation_json(c)), "application/json");
    }));
    svr.route("POST", "/v1/conversations/:id", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        ojson       body;
        if (!owner(req, res, uid) || !body_json(req, res, body)) return;
        conversation_record c;
        if (error e = db->get_conversation(uid, req.params.at("id"), c)) return send_error(res, store_error(e));
        std::string meta = c.metadata_json, title = c.title;
        if (!body.contains("metadata")) return send_error(res, bad_request("metadata", "send the new metadata"));
        if (api_error e = parse_metadata(body["metadata"], meta, title)) return send_error(res, e);
        if (error e = db->update_conversation(uid, c.id, title, meta)) return send_error(res, store_error(e));
        db->get_conversation(uid, c.id, c);
        res.set_content(wire(conversation_json(c)), "application/json");
    }));
    svr.route("DELETE", "/v1/conversations/:id", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        const std::string id = req.params.at("id");
        if (error e = db->delete_conversation(uid, id)) return send_error(res, store_error(e));
        res.set_content(wire(ojson{ { "id", id }, { "object", "conversation.deleted" }, { "deleted", true } }), "application/json");
    }));
    svr.route("POST", "/v1/conversations/:id/items", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        ojson       body;
        if (!owner(req, res, uid) || !body_json(req, res, body)) return;
        if (!body.contains("items")) return send_error(res, bad_request("items", "send items: an array of up to 20 items"));
        std::vector<item_record> items;
        if (!parse_items(body["items"], items, res)) return;
        if (error e = db->append_items(uid, req.params.at("id"), items)) return send_error(res, store_error(e));
        res.set_content(wire(list_json(items, false)), "application/json");
    }));
    svr.route("GET", "/v1/conversations/:id/items", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        int32_t limit = 20;
        if (!query_limit(req, res, limit)) return;
        bool newest_first = true;  // OpenAI's default order is desc
        if (auto it = req.query.find("order"); it != req.query.end()) {
            if (it->second != "asc" && it->second != "desc") return send_error(res, bad_request("order", "order must be asc or desc"));
            newest_first = it->second == "desc";
        }
        int64_t cursor = 0;
        if (auto it = req.query.find("after"); it != req.query.end()) {
            item_record a;
            if (error e = db->get_item(uid, it->second, a); e || a.conversation_id != req.params.at("id")) {
                return send_error(res, make_error(404, "after: no item '" + utf8_head(it->second, 100) + "' in this conversation",
                                                  "invalid_request_error", "not_found"));
            }
            cursor = a.seq;
        }
        std::vector<item_record> items;
        if (error e = db->list_items(uid, req.params.at("id"), cursor, limit + 1, items, newest_first)) return send_error(res, store_error(e));
        const bool more = (int32_t) items.size() > limit;
        if (more) items.pop_back();
        res.set_content(wire(list_json(items, more)), "application/json");
    }));
    // The :item of the :id conversation, the user's own; false with the 404 sent otherwise.
    auto item_in = [this](http::request & req, http::response & res, const std::string & uid, item_record & it) {
        error e = db->get_item(uid, req.params.at("item"), it);
        if (!e && it.conversation_id == req.params.at("id")) return true;
        send_error(res, e ? store_error(e) : make_error(404, "no item with this id in this conversation", "invalid_request_error", "not_found"));
        return false;
    };
    svr.route("GET", "/v1/conversations/:id/items/:item", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        item_record it;
        if (!item_in(req, res, uid, it)) return;
        res.set_content(wire(item_json(it)), "application/json");
    }));
    svr.route("DELETE", "/v1/conversations/:id/items/:item", counted([=, this](http::request & req, http::response & res) {
        std::string uid;
        if (!owner(req, res, uid)) return;
        item_record it;
        if (!item_in(req, res, uid, it)) return;
        if (error e = db->delete_item(uid, it.id)) return send_error(res, store_error(e));
        conversation_record c;
        if (error e = db->get_conversation(uid, req.params.at("id"), c)) return send_error(res, store_error(e));
        res.set_content(wire(conversation_json(c)), "application/json");
    }));
}

}  // namespace muse
