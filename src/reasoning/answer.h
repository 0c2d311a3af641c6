#pragma once
// Final-answer extraction and majority vote, for self-consistency over K parallel reasoning agents:
//
//     std::vector<muse::ballot> ballots;
//     for (int i = 0; i < k; ++i) {
//         ballots.push_back({ i, muse::extract_answer(texts[i]), mean_logprob[i] });
//     }
//     muse::vote_result v = muse::majority_vote(ballots);  // v.display is the answer to show, v.agreement how sure
//
// Comparison keys: numbers go through muse::normalize_number ("1,000" == "1000.0"), option letters are upper-cased
// ("(b)" == "B"), other spans are lower-cased with punctuation and articles removed ("The Paris." == "paris").
//
// Thread safety: pure functions without shared state; call from any thread.

#include <string>
#include <vector>

namespace muse {

enum answer_kind { ANSWER_NONE, ANSWER_NUMBER, ANSWER_OPTION, ANSWER_SPAN };

struct extracted_answer {
    answer_kind kind = ANSWER_NONE;
    std::string display;     // as the agent wrote it, trimmed ("1,000")
    std::string normalized;  // comparison key ("1000"; option "B"; span lower-cased, punctuation/articles stripped)
};

// Finds the final answer in an agent's answer text. Priority: an explicit marker ("\boxed{X}", then
// "Final answer: X", then "Answer: X" / "answer is X", then "**X**" on the last line; the last occurrence of each);
// else an option letter when the text is just an option like "(B)", "B)", "B.", "option B"; else when the whole
// text is short (<= 8 words, <= 80 chars) the whole text (as a number or option when it is one, else a span);
// else the last number in the text if the text is short-ish (<= 40 words); else ANSWER_NONE.
// Numbers are normalized with muse::normalize_number, so "1,000", "1000" and "1000.0" agree.
extracted_answer extract_answer(const std::string & text);

struct ballot {
    int              agent = 0;  // agent index (order the agents were started)
    extracted_answer answer;
    double           confidence = 0;  // the agent's mean token log-probability (higher = surer); 0 when unknown
    // VOTE_WEIGHTED: the ballot counts exp(log_weight) (the agent's weakest_logprob: the
    // probability of its least likely stretch of tokens). Unknown for any ballot: a plain count.
    bool   has_weight = false;
    double log_weight = 0;
};

// How ballots count: one each (self-consistency), or weighted by how sure each agent was at
// its weakest point (DeepConf-style confidence weighting: a slip shows as a stretch of
// unlikely tokens, and an answer reached through one counts little).
enum vote_rule { VOTE_MAJORITY, VOTE_WEIGHTED };
const char * vote_rule_name(vote_rule r);
bool         parse_vote_rule(const std::string & s, vote_rule & out);  // "majority" or "weighted"

struct vote_tally_entry {
    std::string      normalized, display;
    int              votes = 0;
    std::vector<int> agents;        // ascending
    double           weight = 0;    // share of the total weight, [0, 1] (weighted), else votes / voters
};

struct vote_result {
    bool                          decided = false;      // false when no ballot had an answer
    std::string                   normalized, display;  // the winner
    int                           votes  = 0;           // the winner's votes
    int                           voters = 0;           // ballots counted
    bool                          tie    = false;       // more than one answer had the top count
    std::string                   tie_break;            // when tie: "confidence" or "first agent"
    double                        agreement = 0;        // votes / voters
    bool                          weighted  = false;    // ballots counted by weight (VOTE_WEIGHTED with every weight known)
    double                        weight    = 0;        // the winner's share of the weight (weighted), else agreement
    std::vector<vote_tally_entry> tally;                // all answers, winner first, then by count (weight) and first agent
};

// Majority vote over ballots whose answer kind != ANSWER_NONE. Ties: the tied answer whose agents have the higher
// mean confidence (over its ballots with a known, non-zero confidence) wins ("confidence"); if that is also equal,
// or some tied answer has no known confidence at all, the answer given by the lowest agent index wins ("first
// agent"). Deterministic.
// The winner's display is the display string of the lowest-index agent that gave it.
// VOTE_WEIGHTED with every counted ballot's weight known: the answer with the largest total
// weight wins (equal weights fall back to the rules above); otherwise a plain count.
vote_result majority_vote(const std::vector<ballot> & ballots, vote_rule rule = VOTE_MAJORITY);

}  // namespace muse
