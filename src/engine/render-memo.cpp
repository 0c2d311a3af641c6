#include "render-memo.h"

namespace muse {

namespace {

// Each text length-prefixed, each number ';'-terminated.
void key_part(std::string & k, const std::string & s) {
    k += std::to_string(s.size());
    k += ':';
    k += s;
}

void key_part(std::string & k, int64_t v) {
    k += std::to_string(v);
    k += ';';
}

template <typename... T> void fields(std::string & k, const T &... v) {
    (key_part(k, v), ...);
}

}  // namespace

std::string render_memo::key(const common_chat_templates_inputs & in) {
    using n = int64_t;
    std::string k;
    key_part(k, (n) in.messages.size());
    for (const auto & m : in.messages) {
        fields(k, m.role, m.content, (n) m.content_parts.size());
        for (const auto & p : m.content_parts) {
            fields(k, p.type, p.text);
        }
        fields(k, m.reasoning_content, m.tool_name, m.tool_call_id, (n) m.tool_calls.size());
        for (const auto & tc : m.tool_calls) {
            fields(k, tc.name, tc.arguments, tc.id);
        }
        if (k.size() > k_max_key_bytes) {
            return {};
        }
    }
    fields(k, in.grammar, in.json_schema, (n) in.add_generation_prompt, (n) in.continue_final_message, (n) in.use_jinja,
           (n) in.tools.size());
    for (const auto & t : in.tools) {
        fields(k, t.name, t.description, t.parameters);
    }
    fields(k, (n) in.tool_choice, (n) in.parallel_tool_calls, (n) in.reasoning_format, (n) in.enable_thinking,
           (n) in.chat_template_kwargs.size());
    for (const auto & [name, value] : in.chat_template_kwargs) {
        fields(k, name, value);
    }
    fields(k, (n) in.add_bos, (n) in.add_eos, (n) in.force_pure_content);
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
