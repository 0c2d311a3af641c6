// The shared safety flags (see safety-flags.h).

#include "safety-flags.h"

namespace muse::cli {

bool parse_safety_flag(args & a, safety_flags & f) {
    if (a.value("--safety-policy", f.policy_file)) return true;
    if (a.value("--locale", f.locale)) {
        if (a.error.empty() && (f.locale.empty() || f.locale.size() > 16)) a.error = "--locale must be a tag like en-US, de or fr-FR";
        return true;
    }
    if (a.value("--emergency-number", f.emergency_number)) {
        bool ok = !f.emergency_number.empty() && f.emergency_number.size() <= 32;
        for (char c : f.emergency_number) ok = ok && (std::isdigit((unsigned char) c) || c == ' ' || c == '+' || c == '-');
        if (a.error.empty() && !ok) a.error = "--emergency-number must be digits (with spaces, + or -), like 112 or 911";
        return true;
    }
    if (a.value("--redact", f.redact)) {
        safety_policy probe;
        if (error e = parse_redact_list(f.redact, probe); e && a.error.empty()) a.error = "--" + e.message;
        return true;
    }
    if (a.value("--safety-fail", f.fail)) {
        if (a.error.empty() && f.fail != "closed" && f.fail != "open") a.error = "--safety-fail must be closed or open, got '" + f.fail + "'";
        return true;
    }
    if (a.value("--guard-model", f.guard_model)) return true;
    if (a.value("--pii-regions", f.pii_regions)) {
        safety_policy probe;
        if (error e = parse_region_list(f.pii_regions, probe); e && a.error.empty()) a.error = "--" + e.message;
        return true;
    }
    if (a.flag("--no-safety")) {
        f.off = true;
        return true;
    }
    return false;
}

std::string build_safety(const safety_flags & f, std::shared_ptr<safety_door> & out) {
    out.reset();
    if (f.off) return "";
    safety_policy p;
    if (!f.policy_file.empty()) {
        if (error e = load_safety_policy(f.policy_file, p)) return e.message;
    }
    // Flags win over the file.
    if (!f.locale.empty()) p.locale = f.locale;
    if (!f.emergency_number.empty()) p.emergency_number = f.emergency_number;
    if (!f.redact.empty()) {
        if (error e = parse_redact_list(f.redact, p)) return "--" + e.message;
    }
    if (!f.fail.empty()) p.fail_closed = f.fail == "closed";
    if (!f.pii_regions.empty()) {
        if (error e = parse_region_list(f.pii_regions, p)) return "--" + e.message;
    }
    if (!p.enabled) return "";
    try {
        out = std::make_shared<safety_door>(p);
    } catch (const std::exception & e) {
        return std::string("the safety rules could not be built: ") + e.what();
    }
    return "";
}

const char * safety_help() {
    return "safety (defaults are on; see README, Safety):\n"
           "  --locale TAG          texts, emergency number and crisis line for this locale\n"
           "                        (en, en-US, en-GB, en-AU, de, fr, es, it, ...; default en: 112)\n"
           "  --emergency-number N  the number red-flag guidance tells people to call (default: the locale's)\n"
           "  --redact LIST         where personal data becomes <EMAIL_1>-style placeholders: logs, traces,\n"
           "                        store, answers, or none (default logs,traces,store)\n"
           "  --pii-regions LIST    regions whose phone formats count as personal data (default US,GB,DE,FR,ES,IT)\n"
           "  --safety-policy FILE  a JSON policy (locale, numbers, per-category actions, redaction)\n"
           "  --safety-fail MODE    closed (default: a failed safety check refuses the request) or open\n"
           "  --guard-model FILE    a guard model in Llama Guard 3's format (or self: the served model) judges\n"
           "                        each turn beside the answer, which is held until its verdict\n"
           "  --no-safety           no safety gates at all\n";
}

}  // namespace muse::cli
