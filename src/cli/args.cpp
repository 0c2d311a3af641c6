#include "args.h"

#include <cstdio>
#include <cstdlib>

namespace muse::cli {

args::args(int argc, char ** argv, int first) {
    for (int k = first; k < argc; ++k) {
        v.emplace_back(argv[k]);
    }
}

bool args::flag(const char * name) {
    if (!done() && v[i] == name) {
        i++;
        return true;
    }
    return false;
}

bool args::value(const char * name, std::string & out) {
    if (done()) {
        return false;
    }
    const std::string n  = name;
    const std::string &a = v[i];
    if (a == n) {
        if (i + 1 >= (int) v.size()) {
            error = n + " needs a value";
            i++;
            return true;
        }
        out = v[i + 1];
        i += 2;
        return true;
    }
    if (a.rfind(n + "=", 0) == 0) {
        out = a.substr(n.size() + 1);
        i++;
        return true;
    }
    return false;
}

bool args::int_value(const char * name, int64_t lo, int64_t hi, int32_t & out) {
    std::string s;
    if (!value(name, s)) {
        return false;
    }
    if (!error.empty()) {
        return true;
    }
    char *    end = nullptr;
    long long x   = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || x < lo || x > hi) {
        error = std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + s + "'";
        return true;
    }
    out = (int32_t) x;
    return true;
}

bool args::float_value(const char * name, double lo, double hi, float & out) {
    std::string s;
    if (!value(name, s)) {
        return false;
    }
    if (!error.empty()) {
        return true;
    }
    char * end = nullptr;
    double x   = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(x >= lo && x <= hi)) {
        char buf[160];
        snprintf(buf, sizeof(buf), "%s must be a number in [%g, %g], got '%s'", name, lo, hi, s.c_str());
        error = buf;
        return true;
    }
    out = (float) x;
    return true;
}

bool args::limit_value(const limit & l, double & out, const char * name) {
    const char * flag = name ? name : l.flag;
    std::string  s;
    if (!*flag || !value(flag, s)) {
        return false;
    }
    if (!error.empty()) {
        return true;
    }
    char *       end = nullptr;
    const double x   = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !limit_problem(l, x).empty()) {
        error = std::string(flag) + " must be " + (l.integer ? "an integer" : "a number") + " in " + limit_range_text(l) +
                ", got '" + s + "'";
        return true;
    }
    out = x;
    return true;
}

}  // namespace muse::cli
