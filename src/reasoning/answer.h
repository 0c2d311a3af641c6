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
};

struct vote_tally_entry {
    std::string      normalized, display;
    int              votes = 0;
    std::vector<int> agents;  // ascending
};

struct vote_result {
    bool                          decided = false;      // false when no ballot had an answer
    std::string                   normalized, display;  // the winner
    int                           votes  = 0;           // the winner's votes
    int                           voters = 0;           // ballots counted
    bool                          tie    = false;       // more than one answer had the top count
    std::string                   tie_break;            // when tie: "confidence" or "first agent"
    double                        agreement = 0;        // votes / voters
    std::vector<vote_tally_entry> tally;                // all answers, most votes first (winner, then by first agent)
};

// Majority vote over ballots whose answer kind != ANSWER_NONE. Ties: the tied answer whose agents have the higher
// mean confidence (over its ballots with a known, non-zero confidence) wins ("confidence"); if that is also equal,
// or some tied answer has no known confidence at all, the answer given by the lowest agent index wins ("first
// agent"). Deterministic.
// The winner's display is the display string of the lowest-index agent that gave it.
vote_result majority_vote(const std::vector<ballot> & ballots);

}  // namespace muse
