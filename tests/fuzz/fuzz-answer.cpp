// The answer extractor behind the contemplating vote: any model text (boxed LaTeX, options,
// numbers, Markdown) gives an answer or none; a vote over a few of them stays consistent.
#include "reasoning/answer.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string text((const char *) data, size);
    std::vector<muse::ballot> ballots;
    for (size_t cut : { size, size / 2, size / 3 }) {
        muse::ballot b;
        b.agent  = (int) ballots.size();
        b.answer = muse::extract_answer(text.substr(0, cut));
        if (b.answer.kind != muse::ANSWER_NONE) {
            ballots.push_back(b);
        }
    }
    if (!ballots.empty()) {
        (void) muse::majority_vote(ballots);
    }
    return 0;
}
