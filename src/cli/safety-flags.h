#pragma once
// The safety flags `muse serve`, `muse ask` and `muse chat` share, and the safety door they
// build (app/safety-door.h). Defaults are safe: the gates are on, classifier failures refuse,
// personal data is redacted in logs, traces and the store.
//
//   safety_flags sf;
//   while (...) { if (parse_safety_flag(a, sf)) continue; ... }
//   std::shared_ptr<muse::safety_door> door;
//   if (std::string e = build_safety(sf, door); !e.empty()) { /* "muse serve: " + e, exit 2 */ }

#include "args.h"

#include "app/safety-door.h"

#include <memory>
#include <string>

namespace muse::cli {

struct safety_flags {
    std::string policy_file, locale, emergency_number, redact, fail;
    bool        off = false;  // --no-safety
};

// Consumes one safety flag (false: not one of them); a bad value sets a.error.
bool parse_safety_flag(args & a, safety_flags & f);

// The door the flags describe (null with --no-safety); "" or the error to print.
std::string build_safety(const safety_flags & f, std::shared_ptr<safety_door> & out);

// The flags' help lines.
const char * safety_help();

}  // namespace muse::cli
