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
#include "cli.h"

#include "app/safety-door.h"

#include <memory>
#include <string>

namespace muse::cli {

struct safety_flags {
    std::string policy_file, locale, emergency_number, redact, fail, pii_regions;
    std::string guard_model;  // --guard-model FILE (or tiny, smoke; "self": the served model)
    bool        off = false;  // --no-safety
};

// Consumes one safety flag (false: not one of them); a bad value sets a.error.
bool parse_safety_flag(args & a, safety_flags & f);

// The door the flags describe (null with --no-safety); "" or the error to print.
std::string build_safety(const safety_flags & f, std::shared_ptr<safety_door> & out);

// The guard model's runtime (--guard-model), loaded and started, set on `door`; null when there
// is none or it is "self" (then the caller sets the main backend). On failure prints one line
// prefixed with `cmd` and sets `exit_code`.
std::unique_ptr<runtime> load_guard(const char * cmd, const safety_flags & f, safety_door * door, int32_t threads, int & exit_code);

// The flags' help lines.
const char * safety_help();

}  // namespace muse::cli
