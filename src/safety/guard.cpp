// Llama Guard 3's prompt and output (see guard.h).

#include "guard.h"

#include "classifier.h"
#include "core/utf8.h"

#include <algorithm>
#include <cctype>

namespace muse {

guard_prompt_style guard_style_for(std::string_view template_family, std::string_view model_name) {
    if (template_family == "llama-guard") return GUARD_PROMPT_TEMPLATE;
    std::string name(model_name.substr(0, 256));
    for (char & c : name) c = (char) std::tolower((unsigned char) c);
    if (name.find("guard") != std::string::npos) return GUARD_PROMPT_LLAMA_GUARD;
    return GUARD_PROMPT_INSTRUCTIONS_FIRST;
}

const char * guard_style_name(guard_prompt_style style) {
    switch (style) {
        case GUARD_PROMPT_TEMPLATE: return "template";
        case GUARD_PROMPT_LLAMA_GUARD: return "llama-guard";
        case GUARD_PROMPT_INSTRUCTIONS_FIRST: return "instructions-first";
    }
    return "?";
}

std::string guard_prompt(std::string_view user_turn, guard_prompt_style style) {
    user_turn = user_turn.substr(0, utf8_floor(user_turn, 32 * 1024));
    if (style == GUARD_PROMPT_TEMPLATE) return std::string(user_turn);
    static const char * names[] = { "", "Violent Crimes", "Non-Violent Crimes", "Sex-Related Crimes", "Child Sexual Exploitation",
                                    "Defamation", "Specialized Advice", "Privacy", "Intellectual Property", "Indiscriminate Weapons",
                                    "Hate", "Suicide & Self-Harm", "Sexual Content", "Elections", "Code Interpreter Abuse" };
    std::string categories = "<BEGIN UNSAFE CONTENT CATEGORIES>\n";
    for (int i = 1; i <= 14; ++i) categories += "S" + std::to_string(i) + ": " + names[i] + ".\n";
    categories += "<END UNSAFE CONTENT CATEGORIES>\n\n";
    const std::string task = "Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with "
                             "the below categories.\n\n";
    const std::string conversation = "<BEGIN CONVERSATION>\n\nUser: " + std::string(user_turn) + "\n\n<END CONVERSATION>";
    if (style == GUARD_PROMPT_INSTRUCTIONS_FIRST) {
        return task + categories +
               "Provide your safety assessment for ONLY THE LAST User message in the conversation below:\n"
               " - First line must read 'safe' or 'unsafe'.\n"
               " - If unsafe, a second line must include a comma-separated list of violated categories.\n\n" +
               conversation;
    }
    return task + categories + conversation +
           "\n\nProvide your safety assessment for ONLY THE LAST User message in the above conversation:\n"
           " - First line must read 'safe' or 'unsafe'.\n"
           " - If unsafe, a second line must include a comma-separated list of violated categories.";
}

guard_verdict parse_guard_output(std::string_view text) {
    guard_verdict v;
    size_t        at = 0;
    while (at < text.size() && std::isspace((unsigned char) text[at])) at++;
    const size_t    eol   = text.find('\n', at);
    std::string     first(text.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at));
    while (!first.empty() && std::isspace((unsigned char) first.back())) first.pop_back();
    for (char & c : first) c = (char) std::tolower((unsigned char) c);
    if (first == "safe") {
        v.ok = true;
        return v;
    }
    if (first != "unsafe") return v;
    v.safe = false;
    if (eol == std::string_view::npos) return v;  // unsafe without categories: not the format
    const std::string_view rest = text.substr(eol + 1);
    std::string            tok;
    auto push = [&] {
        if (tok.size() >= 2 && tok.size() <= 3 && tok[0] == 'S') {
            const int n = std::atoi(tok.c_str() + 1);
            if (n >= 1 && n <= 14 && std::to_string(n) == tok.substr(1) &&
                std::find(v.categories.begin(), v.categories.end(), tok) == v.categories.end()) {
                v.categories.push_back(tok);  // once each, however often the model repeats it
            }
        }
        tok.clear();
    };
    for (char c : rest) {
        if (c == '\n') break;
        if (c == ',' || std::isspace((unsigned char) c)) push();
        else tok += (char) std::toupper((unsigned char) c);
    }
    push();
    v.ok = !v.categories.empty();
    return v;
}

const char * guard_grammar() {
    return "root ::= \"safe\" | \"unsafe\\n\" cat (\",\" cat){0,3}\n"
           "cat  ::= \"S\" ([1-9] | \"1\" [0-4])\n";
}

}  // namespace muse
