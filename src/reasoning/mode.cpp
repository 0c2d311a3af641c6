#include "mode.h"

#include "modes.h"

#include <algorithm>
#include <cctype>

namespace muse {

const std::vector<const mode *> & all_modes() {
    static const std::vector<const mode *> modes = { &instant_mode(), &thinking_mode(), &contemplating_mode(),
                                                     &auto_mode() };
    return modes;
}

const mode & find_mode(ask_mode m) {
    for (const mode * x : all_modes()) {
        if (x->id() == m) {
            return *x;
        }
    }
    return auto_mode();
}

const char * ask_mode_name(ask_mode m) {
    for (const mode * x : all_modes()) {
        if (x->id() == m) {
            return x->name();
        }
    }
    return "unknown";
}

bool parse_ask_mode(const std::string & s, ask_mode & out) {
    // A model's one-word classification may come with a newline around it.
    const char * ws = " \t\r\n";
    const size_t b  = s.find_first_not_of(ws);
    std::string  l  = b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
    std::transform(l.begin(), l.end(), l.begin(), [](char c) { return (char)std::tolower((unsigned char)c); });
    for (const mode * x : all_modes()) {
        if (l == x->name()) {
            out = x->id();
            return true;
        }
    }
    return false;
}

static std::string english_list(const std::vector<std::string> & names, const char * last_sep) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i > 0) {
            s += i + 1 == names.size() ? last_sep : ", ";
        }
        s += names[i];
    }
    return s;
}

std::string mode_name_list(const std::vector<const mode *> & modes, const char * last_sep) {
    std::vector<std::string> names;
    for (const mode * m : modes) {
        names.push_back(m->name());
    }
    return english_list(names, last_sep);
}

std::vector<const mode *> modes_where(bool (*keep)(const mode_traits &)) {
    std::vector<const mode *> out;
    for (const mode * m : all_modes()) {
        if (keep(m->traits())) {
            out.push_back(m);
        }
    }
    return out;
}

const std::vector<effort_level> & effort_levels() {
    static const std::vector<effort_level> levels = {
        { "none", MODE_INSTANT, 0 },       { "minimal", MODE_THINKING, 256 }, { "low", MODE_THINKING, 1024 },
        { "medium", MODE_THINKING, 2048 }, { "high", MODE_THINKING, 8192 },   { "xhigh", MODE_CONTEMPLATING, 8192 },
    };
    return levels;
}

const effort_level * find_effort(const std::string & name) {
    for (const auto & e : effort_levels()) {
        if (name == e.name) {
            return &e;
        }
    }
    return nullptr;
}

std::string effort_name_list() {
    std::vector<std::string> names;
    for (const auto & e : effort_levels()) {
        names.push_back(e.name);
    }
    return english_list(names, " or ");
}

}  // namespace muse
