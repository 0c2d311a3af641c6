#pragma once
// Top-k sampling without a whole-vocabulary candidate array. llama.cpp's common sampler copies
// every logit into a candidate array (150k entries for Qwen) and partially sorts it for each
// token: about half a millisecond per sequence per step on a CPU, paid again for every sequence
// in the batch. This sampler scans the logits once for the k largest, then runs llama.cpp's own
// samplers (top-p, min-p, temperature, the seeded draw) on those k candidates, so that it picks
// exactly the token the common sampler would pick from the same logits and seed.
//
// It covers the usual case: 1 <= top_k <= 128, no repetition, frequency or presence penalty,
// no grammar, no suppressed tokens in the vocabulary; a reasoning budget is kept (its forced
// tokens go through the whole-vocabulary path). Temperature 0 included: the greedy token is
// then the first of the top k, which among equal logits is not always the lowest id, the way
// llama.cpp breaks the tie. engine_core uses llama.cpp's common sampler for everything else.

#include "llama-cpp.h"
#include "sampling.h"

#include <vector>

namespace muse {

class fast_sampler {
  public:
    // Whether sp can be sampled here (see above); n_suppress: the vocabulary's suppressed tokens.
    static bool supports(const common_params_sampling & sp, int32_t n_suppress);

    // The sampler common_sampler_init(sp) would build, for parameters that supports(). vocab
    // may be null when sp has no reasoning budget; n_vocab: logits per row.
    fast_sampler(const llama_vocab * vocab, int32_t n_vocab, const common_params_sampling & sp);

    // Picks the next token from one row of logits and advances the budget's state with it.
    llama_token sample(const float * logits);

  private:
    int32_t                       n_vocab = 0;
    int32_t                       top_k   = 0;
    llama_sampler_ptr             chain;    // top-k, top-p, min-p, temperature, dist
    llama_sampler_ptr             rbudget;  // reasoning budget, or null
    std::vector<llama_token_data> cur;
};

// The largest of x[0, n) (-inf when n is 0), in a loop that vectorises.
float max_logit(const float * x, int32_t n);

// The k largest of logits[0, n), sorted by logit, descending, into out (resized to min(k, n)):
// the same elements in the same order as llama.cpp's top-k on the whole array, ties included.
// Up to 8192 logits it is that very operation (cheaper there than tracking llama.cpp's heap).
void top_k_logits(const float * logits, int32_t n, int32_t k, std::vector<llama_token_data> & out);

}  // namespace muse
