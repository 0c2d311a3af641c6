#include "render-memo.h"

namespace muse {

namespace {

void field(std::string & k, const std::string & s) {
    k += std::to_string(s.size());
    k += ':';
    k += s;
}

void flag(std::string & k, int64_t v) {
    k += std::to_string(v);
    k += ';';
}

}  // namespace

std::string render_memo::key(const common_chat_templates_inputs & in) {
    std::string k;
    flag(k, (int64_t) in.messages.size());
    for (const auto & m : in.messages) {
        field(k, m.role);
        field(k, m.content);
        flag(k, (int64_t) m.content_parts.size());
        for (const auto & p : m.content_parts) {
            field(k, p.type);
            field(k, p.text);
        }
        field(k, m.reasoning_content);
        field(k, m.tool_name);
        field(k, m.tool_call_id);
        flag(k, (int64_t) m.tool_calls.size());
        for (const auto & tc : m.tool_calls) {
            field(k, tc.name);
            field(k, tc.arguments);
            field(k, tc.id);
        }
        if (k.size() > k_max_key_bytes) {
            return {};
        }
    }
    field(k, in.grammar);
    field(k, in.json_schema);
    flag(k, in.add_generation_prompt);
    flag(k, (int64_t) in.continue_final_message);
    flag(k, in.use_jinja);
    flag(k, (int64_t) in.tools.size());
    for (const auto & t : in.tools) {
        field(k, t.name);
        field(k, t.description);
        field(k, t.parameters);
    }
    flag(k, (int64_t) in.tool_choice);
    flag(k, in.parallel_tool_calls);
    flag(k, (int64_t) in.reasoning_format);
    flag(k, in.enable_thinking);
    flag(k, (int64_t) in.chat_template_kwargs.size());
    for (const auto & [name, value] : in.chat_template_kwargs) {
        field(k, name);
        field(k, value);
    }
    flag(k, in.add_bos);
    flag(k, in.add_eos);
    flag(k, in.force_pure_content);
    return k.size() > k_max_key_bytes ? std::string() : k;
}

bool render_memo::get(const std::string & key, common_chat_params & out) {
    if (key.empty()) {
        return false;
    }
    std::lock_guard<std::mutex> lk(mu);
    const auto                  now = clock::now();
    for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (now - it->at >= ttl) {
            entries.erase(it, entries.end());  // older ones follow: all expired
            return false;
        }
        if (it->key == key) {
            out = it->value;
            n_hits++;
            return true;
        }
    }
    return false;
}

void render_memo::put(std::string key, const common_chat_params & value) {
    if (key.empty()) {
        return;
    }
    std::lock_guard<std::mutex> lk(mu);
    for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->key == key) {
            entries.erase(it);
            break;
        }
    }
    entries.push_front({ std::move(key), value, clock::now() });
    if (entries.size() > k_entries) {
        entries.pop_back();
    }
}

uint64_t render_memo::hits() const {
    std::lock_guard<std::mutex> lk(mu);
    return n_hits;
}

}  // namespace muse
