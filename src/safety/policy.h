#pragma once
// What the safety gates do with a classification: the policy (per category: allow or refuse;
// where personal data is redacted; the locale's emergency number, crisis line and texts), and
// the decision for one request — the guidance that goes first, the disclaimer that goes last,
// the instruction the model gets, and how each sentence of the answer is checked. All of it is
// deterministic text, so it is tested without a capable model.
//
//   muse::safety_policy pol;                         // safe defaults; load_safety_policy() for a file
//   muse::safety_decision d = muse::decide(classifier.classify(turn), pol);
//   if (d.refuse) answer = d.refusal; else answer = d.prefix + answer_checked + d.suffix;
//
// Thread safety: reentrant; a policy is read-only once built.

#include "classifier.h"
#include "core/error.h"
#include "pii.h"

#include <map>
#include <string>
#include <vector>

namespace muse {

enum safety_action { SAFETY_ALLOW, SAFETY_REFUSE };

struct safety_policy {
    bool        enabled     = true;
    bool        fail_closed = true;   // a classifier failure refuses the request (--safety-fail open lets it through)
    std::string locale      = "en";   // en, en-US, en-GB, de, fr, es, it, en-AU, en-CA, en-IN, pt-BR, ja ...
    std::string emergency_number;     // "" = the locale's (112 when unknown)
    std::string crisis_line;          // "" = the locale's
    std::string disclaimer;           // "" = the locale's medical disclaimer
    // S1-S14 -> action; missing: allow. Defaults refuse S1, S2, S3, S4, S7, S9, S10 and S14
    // (operational requests only, see classifier.h); S5, S8, S12 and S13 are recorded.
    std::map<int, safety_action> actions = { { 1, SAFETY_REFUSE }, { 2, SAFETY_REFUSE }, { 3, SAFETY_REFUSE }, { 4, SAFETY_REFUSE },
                                             { 7, SAFETY_REFUSE }, { 9, SAFETY_REFUSE }, { 10, SAFETY_REFUSE }, { 14, SAFETY_REFUSE } };
    // Regions whose national phone formats the PII recognizer knows (--pii-regions US,GB,...).
    std::vector<std::string> phone_regions = { "US", "GB", "DE", "FR", "ES", "IT" };
    // Where personal data is replaced by typed placeholders (--redact logs,traces,store,answers).
    bool redact_logs = true, redact_traces = true, redact_store = true, redact_answers = false;
};

// A policy file (JSON): {"enabled", "fail": "closed"|"open", "locale", "emergency_number",
// "crisis_line", "disclaimer", "actions": {"S2": "allow", ...}, "redact": ["logs", ...]}.
// Unknown keys and bad values are errors naming the key.
error load_safety_policy(const std::string & path, safety_policy & out);
error parse_safety_policy_json(const std::string & text, safety_policy & out);
// "logs,traces,store,answers" (or "none"); an unknown word is an error naming it.
error parse_redact_list(const std::string & list, safety_policy & out);
// "US,GB,DE": ISO 3166 region codes (two capital letters, at most 32 of them).
error parse_region_list(const std::string & list, safety_policy & out);

// The emergency number and crisis line the policy gives (its own, else the locale's).
std::string emergency_number_for(const safety_policy & p);
std::string crisis_line_for(const safety_policy & p);

struct safety_decision {
    classification input;
    bool           refuse = false;
    std::string    refusal;          // the whole answer when refused
    std::string    refused_by;       // the hazard code ("S9")
    std::string    prefix;           // emergency or crisis guidance: first in the answer
    std::string    suffix;           // the disclaimer: last in the answer
    std::string    instruction;      // added to the system prompt
    bool           dose_guard = false;      // a personal dose in the answer is withheld
    std::string    dose_note;               // ... and replaced by this (the locale's text)
    bool           redact_answer = false;   // personal data in the answer is replaced
    std::vector<std::string> actions;       // what was done: "refuse", "emergency_first", "crisis_first", "disclaimer", ...
    std::vector<std::string> injection;     // signals found in untrusted content (injection.h)
    std::vector<std::string> tools_withheld;  // side-effecting client tools not offered because of them
    std::string              turn;            // the text the gates classified (the guard model reads it too)
    // Whether each sentence must be checked before it is shown (stream_gate holds them).
    bool holds_sentences() const { return dose_guard || redact_answer; }
};

safety_decision decide(const classification & c, const safety_policy & p);

// The locale's refusal ("I can't help with that.").
std::string refusal_text(const safety_policy & p);

// One piece of the answer after the output check: a personal dose withheld, personal data
// replaced (with `r`, so that placeholders stay consistent across the answer).
std::string check_answer_piece(const std::string & piece, const safety_decision & d, const pii_detector & pii, pii_redactor & r);

// The answer cut where a sentence ends (after . ! ? or a line break and the whitespace that
// follows): stream_gate releases the same pieces while streaming, so the checked streamed text
// equals the checked whole answer. Returns the offsets just past each complete piece.
std::vector<size_t> sentence_ends(std::string_view text);

// Holds an answer's content deltas until a sentence is complete, checks it, releases it.
class stream_gate {
  public:
    stream_gate(const safety_decision & d, const pii_detector & pii) : d(d), pii(pii) {}
    // The text to show now (possibly empty: held).
    std::string push(std::string_view delta);
    // The rest, checked (at the end of the answer).
    std::string flush();
    // The whole answer checked the same way (for an answer that was not streamed).
    std::string check_whole(std::string_view answer);

  private:
    const safety_decision & d;
    const pii_detector &    pii;
    pii_redactor            red;
    std::string             held;
};

}  // namespace muse
