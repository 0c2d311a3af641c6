#pragma once
// The auto-mode router: picks instant / thinking / contemplating for a request from cheap text features.
// No model call here; a caller may refine the pick with a one-token classification of its own.
//
// Usage: route_decision d = route_request(text, n_images + n_tables); run d.mode; log d.reason.
//
// Thread safety: pure functions over their arguments; safe from any thread.
//
// Rules, first match wins (deterministic; thresholds below):
//   1. casual (small talk at the start or end, <= ROUTE_CASUAL_MAX_WORDS words)       -> instant
//   2. two or more of math / code / multi_step, and >= ROUTE_SHORT_WORDS words        -> contemplating
//      (shorter, it is one task shown in steps: "solve 3x + 5 = 20 step by step"     -> thinking)
//   3. long (> ROUTE_LONG_WORDS words) with a question                                 -> contemplating
//   4. attachments with analysis words ("analyze", "compare", "summarize", "trend"...) -> contemplating
//   5. any of math / code / multi_step                                                 -> thinking
//   6. medium length (>= ROUTE_SHORT_WORDS words)                                      -> thinking
//   7. otherwise, a short factual request                                              -> instant
// Attachments alone do not raise the mode: "what is in this picture?" stays instant.
//
// Features match English keywords on word boundaries (ASCII case-insensitive); other languages fall
// through to the length rules.

#include "reasoning/mode.h"

#include <string>

namespace muse {

constexpr int ROUTE_CASUAL_MAX_WORDS = 8;
constexpr int ROUTE_SHORT_WORDS      = 12;
constexpr int ROUTE_LONG_WORDS       = 150;

struct route_features {
    int  chars       = 0;  // UTF-8 code points
    int  words       = 0;  // whitespace-separated
    int  questions   = 0;  // '?' count (also the full-width one)
    int  attachments = 0;  // images + tables attached to the request
    // Digits with operators, equations, "calculate", "solve", "how many", "probability", "15%"...
    bool math = false;
    // Code fences, "function", "bug", "compile", common language names...
    bool code = false;
    // "step by step", "plan", "compare", "pros and cons", "prove", "design", "analyze", numbered items "1." "2."
    bool multi_step = false;
    // A short message opening or closing with small talk ("hi", "thanks", "how are you"), none of the above.
    bool casual = false;
};

struct route_decision {
    ask_mode       mode = MODE_INSTANT;
    std::string    reason;  // one line naming the rule and the words that drove it; never empty
    route_features features;
};

route_features route_extract_features(const std::string & text, int attachments);

// Never returns MODE_AUTO.
route_decision route_request(const std::string & text, int attachments);

}  // namespace muse
