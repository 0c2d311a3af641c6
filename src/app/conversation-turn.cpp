#include "conversation-turn.h"

#include "app/result-json.h"
#include "core/utf8.h"

#include <nlohmann/json.hpp>

namespace muse {

error load_history(store & st, const std::string & user_id, const std::string & conversation_id, std::vector<chat_message> & out) {
    std::vector<item_record> items;
    if (error e = st.list_items(user_id, conversation_id, 0, k_store_max_list, items, true)) return e;
    out.clear();
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
        if (it->type != "message" || it->text.empty()) continue;
        chat_message m;
        m.role    = it->role == "developer" ? "system" : it->role;
        m.content = it->text;
        out.push_back(std::move(m));
    }
    return {};
}

error store_turn(store & st, const std::string & user_id, const std::string & conversation_id,
                 const std::vector<chat_message> & turn, const ask_result & answer, const std::string & author,
                 const std::string & model) {
    using ojson = nlohmann::ordered_json;
    const auto dump = [](const ojson & j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); };
    std::vector<item_record> items;
    for (const auto & m : turn) {
        if (m.role != "user" && m.role != "system") continue;
        item_record it;
        it.type         = "message";
        it.role         = m.role;
        it.author       = author;
        it.text         = utf8_sanitize(m.content);
        it.content_json = dump(ojson::array({ { { "type", "input_text" }, { "text", it.text } } }));
        items.push_back(std::move(it));
    }
    item_record a;
    a.type         = "message";
    a.role         = "assistant";
    a.author       = model;
    a.text         = utf8_sanitize(answer.answer);
    a.reasoning    = utf8_sanitize(answer.reasoning);
    a.content_json = dump(ojson::array({ { { "type", "output_text" }, { "text", a.text }, { "annotations", ojson::array() } } }));
    a.trace_json   = dump(to_json(answer));
    a.usage_json   = dump(ojson{ { "input_tokens", answer.use.prompt_tokens_prefilled + answer.use.prompt_tokens_reused },
                                 { "input_tokens_details", { { "cached_tokens", answer.use.prompt_tokens_reused } } },
                                 { "output_tokens", answer.use.completion_tokens } });
    items.push_back(std::move(a));
    return st.append_items(user_id, conversation_id, items);
}

}  // namespace muse
