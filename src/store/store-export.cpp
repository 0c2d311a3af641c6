#include "store-export.h"

namespace muse {

using ojson = nlohmann::ordered_json;

error export_user_common(store & st, const std::string & user_id, int64_t now_ms, ojson & doc) {
    user_record u;
    if (error e = st.get_user(user_id, u)) return e;
    doc = { { "object", "muse.user_export" }, { "exported_at", now_ms },
          { "user", { { "id", u.id }, { "name", u.name }, { "admin", u.admin }, { "created_at", u.created_at } } } };
    ojson convs = ojson::array();
    for (int64_t before = 0;;) {
        std::vector<conversation_record> page;
        if (error e = st.list_conversations(user_id, k_store_max_list, before, page)) return e;
        for (const auto & c : page) {
            ojson items = ojson::array();
            for (int64_t after = 0;;) {
                std::vector<item_record> its;
                if (error e = st.list_items(user_id, c.id, after, k_store_max_list, its, false)) return e;
                for (const auto & it : its) {
                    ojson j = { { "id", it.id }, { "seq", it.seq }, { "type", it.type }, { "role", it.role },
                                { "author", it.author }, { "content", ojson::parse(it.content_json, nullptr, false) },
                                { "text", it.text }, { "reasoning", it.reasoning }, { "created_at", it.created_at } };
                    if (!it.trace_json.empty()) j["muse"] = ojson::parse(it.trace_json, nullptr, false);
                    if (!it.usage_json.empty()) j["usage"] = ojson::parse(it.usage_json, nullptr, false);
                    items.push_back(std::move(j));
                    after = it.seq;
                }
                if ((int32_t) its.size() < k_store_max_list) break;
            }
            convs.push_back({ { "id", c.id }, { "title", c.title }, { "metadata", ojson::parse(c.metadata_json, nullptr, false) },
                              { "created_at", c.created_at }, { "updated_at", c.updated_at }, { "items", items } });
        }
        if ((int32_t) page.size() < k_store_max_list) break;
        before = page.back().updated_at;
    }
    doc["conversations"] = convs;
    std::vector<file_record> files;
    if (error e = st.list_files(user_id, files)) return e;
    ojson fj = ojson::array();
    for (const auto & f : files) {
        fj.push_back({ { "id", f.id }, { "name", f.name }, { "mime", f.mime }, { "bytes", f.bytes }, { "sha256", f.sha256 },
                       { "created_at", f.created_at }, { "content_url", "/v1/files/" + f.id + "/content" } });
    }
    doc["files"] = fj;
    quota_record q;
    if (error e = st.get_quota(user_id, q)) return e;
    doc["quota"] = { { "requests_per_minute", q.requests_per_minute }, { "tokens_per_day", q.tokens_per_day } };
    return {};
}

error export_user_audit(store & st, const std::string & user_id, ojson & doc) {
    std::vector<audit_record> au;
    if (error e = st.list_audit(user_id, au)) return e;
    ojson aj = ojson::array();
    for (const auto & a : au) {
        aj.push_back({ { "at", a.at }, { "actor", a.actor }, { "action", a.action }, { "detail", a.detail } });
    }
    doc["audit"] = aj;
    return {};
}

}  // namespace muse
