#include "chat-format.h"

#include "model.h"

#include "core/json-depth.h"
#include "core/limits.h"

#include "json-schema-to-grammar.h"
#include "peg-parser.h"

#include "json.h"

#include <algorithm>

namespace muse {


// Families whose reasoning is a channel rather than a pair of tags. common/chat knows how
// to parse them but reports no thinking tags, so Muse names the syntax itself.
struct channel_family {
    const char * detect;         // substring of the template source
    const char * reasoning_open; // appended to the generation prompt to open reasoning
    const char * answer_open;    // appended to open the answer directly (reasoning off)
    const char * reasoning_end;  // how the reasoning message ends
};

static const channel_family k_channel_families[] = {
    // Muse Glimmer: "<|start|>assistant to=self<|message|>...<|eom|><|start|>assistant to=user<|message|>..."
    { "to=self<|message|>", " to=self<|message|>", " to=user<|message|>", "<|eom|>" },
};

static const channel_family * find_channel_family(const std::string & src) {
    for (const auto & f : k_channel_families) {
        if (src.find(f.detect) != std::string::npos) {
            return &f;
        }
    }
    return nullptr;
}

static common_chat_msg to_common(const chat_message & m) {
    common_chat_msg c;
    c.role              = m.role;
    c.content           = m.content;
    c.reasoning_content = m.reasoning_content;
    c.tool_call_id      = m.tool_call_id;
    c.tool_name         = m.name;
    for (const auto & tc : m.tool_calls) {
        c.tool_calls.push_back({ tc.name, tc.arguments, tc.id });
    }
    return c;
}

static bool ends_with(const std::string & s, const std::string & suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

static std::string rtrim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

error format_chat(const model & m, const chat_prompt_options & opts, chat_prompt & out) {
    static const std::vector<std::string> k_roles = { "system", "developer", "user", "assistant", "tool" };
    if (opts.messages.empty()) {
        return { ERROR_INVALID_ARGUMENT, "messages: at least one message is required" };
    }
    for (size_t i = 0; i < opts.messages.size(); ++i) {
        const auto & role = opts.messages[i].role;
        if (std::find(k_roles.begin(), k_roles.end(), role) == k_roles.end()) {
            return { ERROR_INVALID_ARGUMENT, "messages[" + std::to_string(i) + "].role: '" + role +
                                                 "' is not one of system, developer, user, assistant, tool" };
        }
    }
    if (!opts.json_schema.empty() && !opts.grammar.empty()) {
        return { ERROR_INVALID_ARGUMENT, "json_schema and grammar cannot be used together" };
    }

    common_json schema;
    if (!opts.json_schema.empty()) {
        try {
            schema = common_json::parse(opts.json_schema);
        } catch (const std::exception & e) {
            return { ERROR_INVALID_ARGUMENT, std::string("json_schema is not valid JSON: ") + e.what() };
        }
        if (!schema.is_object()) {
            return { ERROR_INVALID_ARGUMENT, "json_schema must be a JSON object" };
        }
        if (json_text_depth(opts.json_schema, k_max_schema_depth) > k_max_schema_depth) {
            return { ERROR_INVALID_ARGUMENT, "json_schema nests more than " + std::to_string(k_max_schema_depth) +
                                                 " levels deep; flatten it (use $defs and $ref for shared parts)" };
        }
    }

    common_chat_templates *    tmpls = m.templates();
    const std::string          src   = common_chat_templates_source(tmpls);
    const channel_family *     fam   = find_channel_family(src);
    // A structured answer is a direct answer: reasoning would have to pass the grammar too.
    const reasoning_mode       mode  = (!opts.json_schema.empty() || !opts.grammar.empty()) ? REASONING_OFF : opts.reasoning;

    common_chat_templates_inputs in;
    for (const auto & msg : opts.messages) {
        in.messages.push_back(to_common(msg));
    }
    for (const auto & t : opts.tools) {
        if (t.name.empty()) {
            return { ERROR_INVALID_ARGUMENT, "tools: every tool needs a name" };
        }
        if (!t.parameters.empty()) {
            try {
                (void) common_json::parse(t.parameters);
            } catch (const std::exception & e) {
                return { ERROR_INVALID_ARGUMENT, "tools." + t.name + ".parameters is not valid JSON: " + e.what() };
            }
            if (json_text_depth(t.parameters, k_max_schema_depth) > k_max_schema_depth) {
                return { ERROR_INVALID_ARGUMENT, "tools." + t.name + ".parameters nests more than " +
                                                     std::to_string(k_max_schema_depth) + " levels deep; flatten it" };
            }
        }
        in.tools.push_back({ t.name, t.description, t.parameters.empty() ? "{\"type\":\"object\",\"properties\":{}}" : t.parameters });
    }
    if (opts.tool_choice == "auto" || opts.tool_choice.empty()) {
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_AUTO;
    } else if (opts.tool_choice == "none") {
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_NONE;
    } else if (opts.tool_choice == "required") {
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    } else {
        return { ERROR_INVALID_ARGUMENT, "tool_choice must be auto, none or required, got '" + opts.tool_choice + "'" };
    }
    in.reasoning_format      = COMMON_REASONING_FORMAT_DEEPSEEK;
    in.enable_thinking       = mode != REASONING_OFF;
    in.add_generation_prompt = true;
    if (!opts.reasoning_strength.empty()) {
        const std::string & rs = opts.reasoning_strength;
        if (rs != "low" && rs != "medium" && rs != "high") {
            return { ERROR_INVALID_ARGUMENT, "reasoning_strength must be low, medium or high, got '" + rs + "'" };
        }
        in.chat_template_kwargs["reasoning_strength"] = "\"" + rs + "\"";
    }
    // Channel families get the schema as a grammar below, after their answer prefix.
    if (!fam) {
        in.json_schema = opts.json_schema;
    }

    common_chat_params cp;
    try {
        cp = common_chat_templates_apply(tmpls, in);
    } catch (const std::exception & e) {
        return { ERROR_INVALID_ARGUMENT, std::string("the model's chat template cannot render this conversation: ") + e.what() };
    }

    out                   = chat_prompt{};
    out.prompt            = cp.prompt;
    out.generation_prompt = cp.generation_prompt;
    out.grammar_lazy      = cp.grammar_lazy;
    out.grammar_triggers  = cp.grammar_triggers;
    out.preserved_tokens  = cp.preserved_tokens;
    out.stops             = cp.additional_stops;
    out.parser            = common_chat_parser_params(cp);
    out.parser.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
    if (!cp.parser.empty()) {
        out.parser.parser.load(cp.parser);
    }
    if (!cp.grammar.empty()) {
        out.grammar = { in.tools.empty() ? COMMON_GRAMMAR_TYPE_OUTPUT_FORMAT : COMMON_GRAMMAR_TYPE_TOOL_CALLS, cp.grammar };
    }

    std::string open;  // text Muse appends to open reasoning or the answer
    if (fam) {
        out.syntax = { fam->reasoning_open, { fam->reasoning_end },
                       std::string(fam->reasoning_end) + "<|start|>assistant" + fam->answer_open };
        if (mode == REASONING_ON) {
            open = fam->reasoning_open;
        } else if (mode == REASONING_OFF) {
            open = fam->answer_open;
        }
        out.reasoning = mode != REASONING_OFF;
    } else if (cp.supports_thinking && !cp.thinking_start_tag.empty() && !cp.thinking_end_tags.empty()) {
        out.syntax    = { cp.thinking_start_tag, cp.thinking_end_tags, "\n" + cp.thinking_end_tags.front() + "\n\n" };
        out.reasoning = mode != REASONING_OFF;
        if (mode == REASONING_ON && !ends_with(rtrim(cp.generation_prompt), cp.thinking_start_tag)) {
            open = cp.thinking_start_tag;
        }
    }
    open += opts.assistant_prefix;
    out.prompt += open;
    out.generation_prompt += open;
    out.parser.generation_prompt = out.generation_prompt;

    if (!opts.grammar.empty()) {
        out.grammar      = { COMMON_GRAMMAR_TYPE_USER, opts.grammar };
        out.grammar_lazy = false;
    } else if (!opts.json_schema.empty() && out.grammar.grammar.empty()) {
        try {
            // USER type: the grammar covers only what is generated after the prompt.
            out.grammar = { COMMON_GRAMMAR_TYPE_USER, json_schema_to_grammar(schema) };
        } catch (const std::exception & e) {
            return { ERROR_INVALID_ARGUMENT, std::string("json_schema cannot be turned into a grammar: ") + e.what() };
        }
        out.grammar_lazy = false;
    }
    return {};
}

chat_output_parser::chat_output_parser(common_chat_parser_params p) : params(std::move(p)) {}

// True when the text cannot become a message of the format however it continues.
static bool diverged(const common_chat_parser_params & params, const std::string & text) {
    if (params.parser.empty()) {
        return false;
    }
    common_peg_parse_context ctx(params.generation_prompt + text, COMMON_PEG_PARSE_FLAG_LENIENT);
    return params.parser.parse(ctx).fail();
}

void chat_output_parser::update(const std::string & added, bool final, std::vector<chat_delta> & out) {
    text += added;
    common_chat_msg next;
    if (raw) {
        next = raw_base;
        next.content += text.substr(raw_from);
    } else {
        try {
            next = common_chat_parse(text, !final, params);
        } catch (const std::exception &) {
            next = msg;  // off-format tail at the end: keep what was understood
        }
        // Output that left the format (random weights, a template mismatch, a malformed tool
        // call) is shown as plain content rather than held back forever. What was understood
        // before stays as it was (its reasoning was already streamed); only the text after
        // the last successful parse passes through.
        if (next.empty() && !text.empty() && (final || diverged(params, text))) {
            raw      = true;
            raw_base = msg;
            raw_from = msg.empty() ? 0 : parsed;
            raw_base.role = "assistant";
            next          = raw_base;
            next.content += text.substr(raw_from);
        } else if (!next.empty()) {
            parsed = text.size();
        }
    }
    if (next.empty()) {
        return;
    }
    next.set_tool_call_ids(tool_call_ids, [this] { return "call_" + std::to_string(tool_call_ids.size()); });
    std::vector<common_chat_msg_diff> diffs;
    try {
        diffs = common_chat_msg_diff::compute_diffs(msg, next);
    } catch (const std::exception &) {
        return;  // the parse went back on itself (partial input); wait for more text
    }
    for (auto & d : diffs) {
        chat_delta cd;
        cd.reasoning = std::move(d.reasoning_content_delta);
        cd.content   = std::move(d.content_delta);
        if (d.tool_call_index != std::string::npos) {
            cd.tool_call_index = (int) d.tool_call_index;
            cd.tool_call       = { d.tool_call_delta.id, d.tool_call_delta.name, d.tool_call_delta.arguments };
        }
        out.push_back(std::move(cd));
    }
    msg = std::move(next);
}

}  // namespace muse
