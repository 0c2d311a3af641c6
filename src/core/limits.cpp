#include "limits.h"

#include <cmath>
#include <cstdio>

namespace muse {

namespace {

std::string num(double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.10g", v);
    return buf;
}

// README's numbers: 1,048,576 reads more easily than 1048576.
std::string readable(double v) {
    if (std::floor(v) != v || std::fabs(v) < 10000) {
        return num(v);
    }
    std::string digits = num(std::fabs(v)), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) {
            out += ',';
        }
        out += digits[i];
    }
    return (v < 0 ? "-" : "") + out;
}

std::string code(const char * s) {
    return *s ? std::string("`") + s + "`" : "";
}

}  // namespace

std::string limit_range_text(const limit & l) {
    std::string s = (l.min_open ? "(" : "[") + num(l.min) + ", " + num(l.max) + "]";
    if (l.special) {
        s += " or " + num(l.special_value) + " (" + l.special + ")";
    }
    return s;
}

std::string limit_problem(const limit & l, double v, const std::string & as, bool special_ok) {
    const bool integral = std::isfinite(v) && std::floor(v) == v;
    if ((special_ok ? l.accepts(v) : l.contains(v)) && (integral || !l.integer)) {
        return "";
    }
    limit shown = l;
    if (!special_ok) {
        shown.special = nullptr;
    }
    return (as.empty() ? std::string(l.name) : as) + " must be " + (l.integer ? "an integer" : "a number") + " in " +
           limit_range_text(shown) + ", got " + num(v);
}

std::string limits_markdown() {
    std::string md = "| limit | API field | `muse ask` flag | range | default | unit |\n"
                     "|---|---|---|---|---|---|\n";
    for (const limit * l : k_request_limits) {
        std::string range = (l->min_open ? "(" : "[") + readable(l->min) + ", " + readable(l->max) + "]";
        if (l->special) {
            range += "; " + num(l->special_value) + ": " + l->special;
        }
        if (*l->serve_flag) {
            range += "; API: at most `muse serve " + std::string(l->serve_flag) + "` (default " + readable(l->serve_default) + ")";
        }
        const std::string def = l->def_text ? l->def_text : l->count ? "" : readable(l->def);
        md += std::string("| ") + l->name + " | " + (!l->in(FRONT_API) ? "" : l->api ? l->api : code(l->name)) + " | " +
              (l->in(FRONT_CLI) ? code(l->flag) : "") + " | " + range + " | " + def + " | " + l->unit + " |\n";
    }
    return md;
}

}  // namespace muse
