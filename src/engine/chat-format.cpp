#include "chat-format.h"

#include "model.h"
#include "render-memo.h"

#include "core/json-depth.h"

#include "common.h"
#include "json-schema-to-grammar.h"
#include "peg-parser.h"
#include "unicode.h"

#include "json.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>

namespace muse {


// Families whose reasoning is a channel rather than a pair of tags. common/chat knows how
// to parse them but reports no thinking tags, so Muse names the syntax itself.
struct channel_family {
    const char * detect;         // substring of the template source
    const char * reasoning_open; // appended to the generation prompt to open reasoning
    const char * answer_open;    // appended to open the answer directly (reasoning off)
    const char * reasoning_end;  // how the reasoning message ends
    const char * message_start;  // how the next message of the turn starts, before its recipient
};

static const channel_family k_channel_families[] = {
    // Muse Glimmer: "<|start|>assistant to=self<|message|>...<|eom|><|start|>assistant to=user<|message|>..."
    // and its tool calls, " to=NAME<|message|><atem:function_calls>..." (glimmer_calls below).
    { "to=self<|message|>", " to=self<|message|>", " to=user<|message|>", "<|eom|>", "<|start|>assistant" },
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

// Tool-call grammars Muse builds itself, where llama.cpp's are too loose: Glimmer's leaves the
// recipient after " to=" free and takes any subset of the parameters, raw strings unchecked;
// every family's required-call grammar lets the model write text first, so it may never call.
// They cover what is generated after the prompt (no prefill).

static std::string gbnf_class_char(uint32_t c) {
    if (c > 0x20 && c < 0x7F && !strchr("[]\\^-", (int) c)) {
        return std::string(1, (char) c);
    }
    char buf[16];
    snprintf(buf, sizeof(buf), "\\U%08X", (unsigned) c);
    return buf;
}

// Text that does not contain `delim`: the states of an automaton that tracks how much of
// delim the text ends with, each of which may end the text. Returns the start rule.
static std::string gbnf_excluding(const common_grammar_builder & b, const std::string & name, const std::string & delim) {
    std::vector<uint32_t> d;
    for (size_t i = 0; i < delim.size();) {
        const auto r = common_parse_utf8_codepoint(delim, i);
        d.push_back(r.codepoint);
        i += std::max<size_t>(r.bytes_consumed, 1);
    }
    std::vector<uint32_t> alphabet = d;
    std::sort(alphabet.begin(), alphabet.end());
    alphabet.erase(std::unique(alphabet.begin(), alphabet.end()), alphabet.end());
    auto state = [&](size_t k) { return name + "-" + std::to_string(k); };
    for (size_t k = 0; k < d.size(); ++k) {
        std::string rule = "|", others;
        for (uint32_t c : alphabet) {
            // The longest prefix of delim that the text ends with once c is added.
            std::vector<uint32_t> s(d.begin(), d.begin() + k);
            s.push_back(c);
            size_t n = std::min(s.size(), d.size());
            while (n > 0 && !std::equal(d.begin(), d.begin() + n, s.end() - n)) {
                --n;
            }
            if (n == 0) {
                continue;
            }
            others += gbnf_class_char(c);
            if (n < d.size()) {  // n == d.size() would complete delim: no way there
                rule += " [" + gbnf_class_char(c) + "] " + state(n) + " |";
            }
        }
        b.add_rule(state(k), rule + " [^" + others + "] " + state(0));
    }
    return state(0);
}

// A Glimmer string parameter's value, which the template writes raw up to </atem:parameter>.
static std::string glimmer_raw_value(const common_grammar_builder & b, const common_json & schema) {
    auto raw = [](const common_json & v) { return gbnf_format_literal(v.is_string() ? v.get<std::string>() : v.dump()); };
    if (schema.contains("enum") && schema.at("enum").is_array() && schema.at("enum").size() > 0) {
        std::vector<std::string> alts;
        for (const auto & v : schema.at("enum")) {
            alts.push_back(raw(v));
        }
        return "(" + string_join(alts, " | ") + ")";
    }
    if (schema.contains("const")) {
        return raw(schema.at("const"));
    }
    if (schema.contains("minLength") || schema.contains("maxLength")) {
        // Counted characters leave out '<' so that none of them can start the closing tag.
        const std::string max = schema.contains("maxLength") ? std::to_string(schema.at("maxLength").get<int64_t>()) : "";
        return "[^<]{" + std::to_string(schema.value("minLength", (int64_t) 0)) + "," + max + "}";
    }
    return gbnf_excluding(b, "muse-raw-value", "</atem:parameter>");
}

// One Muse Glimmer tool call as its template writes it, to any of the tools: the recipient is
// the tool's name, every required parameter is there (in the schema's order, optional ones
// where they stand), and each value follows its schema. Returns the rule.
static std::string glimmer_calls(const common_grammar_builder & b, const std::vector<common_chat_tool> & tools,
                                 std::vector<common_json> & params) {
    std::vector<std::string> alts;
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string & name = tools[i].name;
        common_json &       ps   = params[i];
        b.resolve_refs(ps);
        common_schema_info info;
        info.resolve_refs(ps);
        std::set<std::string> required;
        if (ps.contains("required") && ps.at("required").is_array()) {
            for (const auto & r : ps.at("required")) {
                required.insert(r.get<std::string>());
            }
        }
        std::string args;
        if (ps.contains("properties") && ps.at("properties").is_object()) {
            for (const auto & [prop, schema] : ps.at("properties").items()) {
                const std::string value = info.resolves_to_string(schema) ? glimmer_raw_value(b, schema)
                                                                           : b.add_schema("muse-" + name + "-" + prop, schema);
                const std::string arg = gbnf_format_literal("<atem:parameter name=\"" + prop + "\">") + " " + value + " " +
                                        gbnf_format_literal("</atem:parameter>\n");
                args += required.count(prop) ? " " + arg : " (" + arg + ")?";
            }
        }
        alts.push_back(gbnf_format_literal(" to=" + name + "<|message|><atem:function_calls>\n<atem:invoke name=\"" + name + "\">\n") +
                       args + " " + gbnf_format_literal("</atem:invoke>\n</atem:function_calls>"));
    }
    return b.add_rule("muse-tool-call", string_join(alts, " | "));
}

// Every family but Glimmer: the rule of one complete call in llama.cpp's parser of a required
// call, the first trigger rule (where a lazy grammar starts) on the way from its root. When that
// rule only repeats calls (llama.cpp's JSON formats do even when parallel calls are off, which
// Muse never asks for), the call inside. Empty when the format has none.
static std::string common_call_rule(const common_peg_arena & a) {
    std::set<common_peg_parser_id> seen;  // rules recurse (JSON values)
    std::function<std::string(common_peg_parser_id)> find = [&](common_peg_parser_id id) -> std::string {
        return std::visit([&](const auto & p) -> std::string {
            using T = std::decay_t<decltype(p)>;
            if constexpr (std::is_same_v<T, common_peg_sequence_parser> || std::is_same_v<T, common_peg_choice_parser>) {
                for (const auto child : p.children) {
                    if (std::string r = find(child); !r.empty()) {
                        return r;
                    }
                }
            } else if constexpr (std::is_same_v<T, common_peg_rule_parser>) {
                if (!seen.insert(id).second) {
                    return "";
                }
                if (!p.trigger) {
                    return find(p.child);
                }
                const auto * rep = std::get_if<common_peg_repetition_parser>(&a.get(p.child));
                const std::string inner = rep && rep->min_count == 1 ? find(rep->child) : "";
                return inner.empty() ? p.name : inner;
            } else if constexpr (std::is_same_v<T, common_peg_repetition_parser> || std::is_same_v<T, common_peg_tag_parser> ||
                                 std::is_same_v<T, common_peg_atomic_parser>) {
                return find(p.child);
            }
            return "";
        }, a.get(id));
    };
    return a.empty() ? "" : find(a.root());
}

// llama.cpp's rules for that call (schemas applied), as its lazy grammar has them; the root is
// Muse's. Returns the call's rule, or empty.
static std::string common_calls(const common_grammar_builder & b, const common_peg_arena & parser) {
    const std::string call = common_call_rule(parser);
    if (call.empty()) {
        return "";
    }
    std::string            added;
    common_grammar_builder rules = b;
    rules.add_rule = [&](const std::string & name, const std::string & rule) {
        if (name == "root") {
            return name;
        }
        const std::string r = b.add_rule(name, rule);
        if (name == call) {
            added = r;
        }
        return r;
    };
    parser.build_grammar(rules, true);
    return added;
}

enum reasoning_lead {
    LEAD_NONE,      // reasoning is off: the call comes first
    LEAD_OPEN,      // the prompt opened the reasoning: it ends, then the call
    LEAD_OPTIONAL,  // the model may reason first
};

// What the model may write before a required call: the rest of its reasoning (up to `end`,
// then `sep` before the call), or, when optional, a whole reasoning block opened by `start`.
static std::string gbnf_reasoning(const common_grammar_builder & b, reasoning_lead lead, const std::string & start,
                                  const std::string & end, const std::string & sep) {
    if (lead == LEAD_NONE) {
        return "";
    }
    const std::string block = gbnf_excluding(b, "muse-reasoning", end) + " " + gbnf_format_literal(end) + " " + sep;
    return lead == LEAD_OPEN ? block : "(" + gbnf_format_literal(start) + " " + block + ")?";
}

// The grammar of the call when one is required (whatever reasoning may come first), or, for
// Glimmer with tool_choice auto, a lazy one that takes over when the model starts a message to
// one of the tools.
static error tool_call_grammar(const std::vector<common_chat_tool> & tools, const channel_family * fam,
                               reasoning_lead lead, bool call_required, chat_prompt & out) {
    std::vector<common_json> params;
    std::string              grammar;
    try {
        for (const auto & t : tools) {
            params.push_back(common_json::parse(t.parameters));
        }
        bool have_calls = true;
        grammar = build_grammar([&](const common_grammar_builder & b) {
            const std::string calls = fam ? glimmer_calls(b, tools, params) : common_calls(b, out.parser.parser);
            have_calls = !calls.empty();
            if (!call_required) {
                b.add_rule("root", calls);
                return;
            }
            const std::string end = out.syntax.empty() ? "" : out.syntax.ends.front();
            const std::string sep = fam ? gbnf_format_literal(fam->message_start) : "[ \\t\\n]{0,2}";
            b.add_rule("root", gbnf_reasoning(b, lead, out.syntax.start, end, sep) + " " + calls);
        });
        if (!have_calls) {
            return {};  // a format without call rules: llama.cpp's grammar stays
        }
    } catch (const std::exception & e) {
        return { ERROR_INVALID_ARGUMENT, std::string("the tools' parameters cannot be turned into a grammar: ") + e.what() };
    }
    out.grammar          = { COMMON_GRAMMAR_TYPE_USER, grammar };
    out.grammar_lazy     = !call_required;
    out.grammar_triggers = {};
    if (!call_required) {
        // Only a complete recipient that names a tool starts the grammar, after the model's
        // reasoning or answer, or as its first message when the prompt opened neither.
        std::vector<std::string> names;
        for (const auto & t : tools) {
            names.push_back(regex_escape(t.name));
        }
        const std::string recipient = "( to=(?:" + string_join(names, "|") + ")" + regex_escape("<|message|>") + ")";
        out.grammar_triggers.push_back({ COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN, regex_escape(fam->message_start) + recipient });
        if (ends_with(out.generation_prompt, fam->message_start)) {
            out.grammar_triggers.push_back({ COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL, recipient + "[\\s\\S]*" });
        }
    }
    return {};
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
        if (const std::string why = json_schema_problem(opts.json_schema); !why.empty()) {
            return { ERROR_INVALID_ARGUMENT, "json_schema " + why };
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
            if (const std::string why = json_schema_problem(t.parameters); !why.empty()) {
                return { ERROR_INVALID_ARGUMENT, "tools." + t.name + ".parameters " + why };
            }
        }
        in.tools.push_back({ t.name, t.description, t.parameters.empty() ? "{\"type\":\"object\",\"properties\":{}}" : t.parameters });
    }
    if (opts.tool_choice == "auto" || opts.tool_choice.empty()) {
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_AUTO;
    } else if (opts.tool_choice == "none") {
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_NONE;
    } else if (opts.tool_choice == "required") {
        if (in.tools.empty()) {
            return { ERROR_INVALID_ARGUMENT, "tool_choice is required but no tools were given" };
        }
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

    // A conversation rendered a moment ago (Contemplating's K agents) is not rendered again.
    common_chat_params cp;
    std::string        memo_key = render_memo::key(in);
    if (!memo_key.empty()) {
        memo_key = std::to_string(opts.cache_salt.size()) + ":" + opts.cache_salt + memo_key;
    }
    if (!m.renders().get(memo_key, cp)) {
        try {
            cp = common_chat_templates_apply(tmpls, in);
        } catch (const std::exception & e) {
            return { ERROR_INVALID_ARGUMENT, std::string("the model's chat template cannot render this conversation: ") + e.what() };
        }
        m.renders().put(memo_key, cp);
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

    // A required call must not find the answer channel open: the model goes from its
    // reasoning (or straight away) to a message to a tool.
    const bool  call_required = in.tool_choice == COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    std::string open;  // text Muse appends to open reasoning or the answer
    if (fam) {
        out.syntax = { fam->reasoning_open, { fam->reasoning_end },
                       std::string(fam->reasoning_end) + fam->message_start + (call_required ? "" : fam->answer_open) };
        if (mode == REASONING_ON) {
            open = fam->reasoning_open;
        } else if (mode == REASONING_OFF && !call_required) {
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
    const reasoning_lead lead = !out.reasoning || out.syntax.empty()                                ? LEAD_NONE
                                : ends_with(rtrim(cp.generation_prompt + open), out.syntax.start) ? LEAD_OPEN
                                                                                                    : LEAD_OPTIONAL;
    // An agent's own opening words go where the template's reasoning text starts: Qwen-style
    // templates render "<think>\n" + reasoning, so the words follow the newline, as the model's
    // own reasoning would.
    if (!opts.assistant_prefix.empty() && !fam && out.reasoning && !cp.thinking_start_tag.empty() &&
        ends_with(cp.generation_prompt + open, cp.thinking_start_tag)) {
        open += "\n";
    }
    open += opts.assistant_prefix;
    out.prompt += open;
    out.generation_prompt += open;
    out.parser.generation_prompt = out.generation_prompt;

    if (!opts.grammar.empty()) {
        out.grammar      = { COMMON_GRAMMAR_TYPE_USER, opts.grammar };
        out.grammar_lazy = false;
    } else if (!in.tools.empty() && (call_required || (fam && in.tool_choice == COMMON_CHAT_TOOL_CHOICE_AUTO))) {
        if (error err = tool_call_grammar(in.tools, fam, lead, call_required, out)) {
            return err;
        }
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
