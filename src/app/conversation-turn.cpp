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
                 const std::string & model, const safety_door * safety) {
    using ojson = nlohmann::ordered_json;
    const auto   dump   = [](const ojson & j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); };
    const bool   redact = safety && safety->policy().enabled && safety->policy().redact_store;
    pii_redactor red;  // one for the turn: a value keeps its placeholder across its items
    auto clean = [&](const std::string & s) { return redact ? red.redact(utf8_sanitize(s), safety->pii()) : utf8_sanitize(s); };
    std::vector<item_record> items;
    for (const auto & m : turn) {
        if (m.role != "user" && m.role != "system") continue;
        item_record it;
        it.type         = "message";
        it.role         = m.role;
        it.author       = author;
        it.text         = clean(m.content);
        it.content_json = dump(ojson::array({ { { "type", "input_text" }, { "text", it.text } } }));
        items.push_back(std::move(it));
    }
    item_record a;
    a.type         = "message";
    a.role         = "assistant";
    a.author       = model;
    a.text         = clean(answer.answer);
    a.reasoning    = clean(answer.reasoning);
    a.content_json = dump(ojson::array({ { { "type", "output_text" }, { "text", a.text }, { "annotations", ojson::array() } } }));
    ojson trace    = to_json(answer);
    if (redact) safety->redact_json(trace, red);
    a.trace_json = dump(trace);
    a.usage_json   = dump(ojson{ { "input_tokens", answer.use.prompt_tokens_prefilled + answer.use.prompt_tokens_reused },
                                 { "input_tokens_details", { { "cached_tokens", answer.use.prompt_tokens_reused } } },
                                 { "output_tokens", answer.use.completion_tokens } });
    items.push_back(std::move(a));
    return st.append_items(user_id, conversation_id, items);
}

}  // namespace muse
