#include "fast-sampler.h"

#include "common.h"
#include "reasoning-budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace muse {

namespace {

// llama.cpp's top-k uses std::partial_sort up to 128 and a bucket sort above, whose order of
// equal logits this does not reproduce.
constexpr int32_t k_max_top_k = 128;

// Up to this many logits, top-k copies them all and runs std::partial_sort as llama.cpp does
// (measured: 1.5k logits, the heap tracking below costs more than the copy).
constexpr int32_t k_whole_array_max = 8192;

}  // namespace

float max_logit(const float * x, int32_t n) {
    constexpr int k_lanes = 16;  // independent lanes let the loop vectorise
    float         m[k_lanes];
    std::fill(m, m + k_lanes, -INFINITY);
    int32_t i = 0;
    for (; i + k_lanes <= n; i += k_lanes) {
        for (int k = 0; k < k_lanes; ++k) {
            m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
        }
    }
    float r = *std::max_element(m, m + k_lanes);
    for (; i < n; ++i) {
        r = x[i] > r ? x[i] : r;
    }
    return r;
}

void top_k_logits(const float * logits, int32_t n, int32_t k, std::vector<llama_token_data> & out) {
    // llama.cpp takes the top k with std::partial_sort over the whole vocabulary (a heap of
    // the first k, which a later element enters when it beats the heap's smallest). Which of
    // several equal logits survive and in what order depends on that exact sequence, and
    // random-weight models have many equal logits. So the same std::partial_sort runs here on
    // the first k elements plus every later one that would enter the heap: the elements that
    // would not enter change nothing, and they are nearly all of them. The heap's smallest
    // value only depends on the values seen, so a heap of values tracks it, and a block whose
    // maximum does not beat it is skipped after one vectorised pass.
    auto cmp = [](const llama_token_data & a, const llama_token_data & b) { return a.logit > b.logit; };
    k        = std::max(0, std::min(k, n));
    out.clear();
    if (k == 0) {
        return;
    }
    if (n <= k_whole_array_max) {
        // A small vocabulary: llama.cpp's own operation on the whole array is cheaper than
        // tracking which elements would enter its heap.
        out.resize((size_t) n);
        for (int32_t i = 0; i < n; ++i) {
            out[i] = { (llama_token) i, logits[i], 0.0f };
        }
        std::partial_sort(out.begin(), out.begin() + k, out.end(), cmp);
        out.resize(k);
        return;
    }
    out.reserve((size_t) k + 512);
    bool nan = false;
    for (int32_t i = 0; i < k; ++i) {
        out.push_back({ (llama_token) i, logits[i], 0.0f });
        nan = nan || std::isnan(logits[i]);
    }
    if (nan) {
        // NaNs order unlike numbers in a heap: take every element, exactly as llama.cpp does.
        for (int32_t i = k; i < n; ++i) {
            out.push_back({ (llama_token) i, logits[i], 0.0f });
        }
    } else {
        std::vector<float> heap(logits, logits + k);
        std::make_heap(heap.begin(), heap.end(), std::greater<float>());
        float             thr     = heap.front();
        constexpr int32_t k_block = 64;
        for (int32_t b = k; b < n; b += k_block) {
            const int32_t e = std::min(n, b + k_block);
            if (!(max_logit(logits + b, e - b) > thr)) {
                continue;
            }
            for (int32_t i = b; i < e; ++i) {
                if (logits[i] > thr) {
                    out.push_back({ (llama_token) i, logits[i], 0.0f });
                    std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
                    heap.back() = logits[i];
                    std::push_heap(heap.begin(), heap.end(), std::greater<float>());
                    thr = heap.front();
                }
            }
        }
    }
    std::partial_sort(out.begin(), out.begin() + k, out.end(), cmp);
    out.resize(k);
}

bool fast_sampler::supports(const common_params_sampling & sp, int32_t n_suppress) {
    return sp.top_k >= 1 && sp.top_k <= k_max_top_k && sp.min_keep == 0 && sp.mirostat == 0 &&
           sp.penalty_repeat == 1.0f && sp.penalty_freq == 0.0f && sp.penalty_present == 0.0f &&
           sp.dry_multiplier == 0.0f && sp.xtc_probability <= 0.0f && sp.typ_p >= 1.0f && sp.top_n_sigma <= 0.0f &&
           sp.dynatemp_range == 0.0f && sp.logit_bias.empty() && common_grammar_value(sp.grammar).empty() &&
           !sp.grammar_lazy && n_suppress == 0;
}

fast_sampler::fast_sampler(const llama_vocab * vocab, int32_t n_vocab_, const common_params_sampling & sp) :
    n_vocab(n_vocab_),
    top_k(sp.top_k) {
    // common_sampler_init's chain for these parameters, less the samplers that do nothing
    // with them (penalties, DRY, top-n-sigma, typical, XTC at their neutral values).
    chain.reset(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(sp.top_k));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(sp.top_p, sp.min_keep));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(sp.min_p, sp.min_keep));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp_ext(sp.temp, sp.dynatemp_range, sp.dynatemp_exponent));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(sp.seed));

    // Its reasoning budget, also as common_sampler_init builds it (that one is private to it).
    if (vocab && !sp.reasoning_budget_start.empty() && !sp.reasoning_budget_end.empty() && sp.reasoning_budget_tokens >= 0) {
        rbudget.reset(common_reasoning_budget_init(vocab, { sp.reasoning_budget_start }, sp.reasoning_budget_end,
                                                   sp.reasoning_budget_forced, sp.reasoning_budget_tokens));
        // The generation prompt's tokens were "generated" already: they set the budget's state
        // (e.g. a prompt that opens the reasoning starts the count).
        if (!sp.generation_prompt.empty()) {
            const auto toks = common_tokenize(vocab, sp.generation_prompt, false, true);
            for (size_t i = 0; i < toks.size(); ++i) {
                const std::string piece = common_token_to_piece(vocab, toks[i], true);
                if (i == 0 && !piece.empty() && std::isspace((unsigned char) piece[0]) &&
                    !std::isspace((unsigned char) sp.generation_prompt[0])) {
                    continue;  // a space some tokenizers put before the first special token
                }
                llama_sampler_accept(rbudget.get(), toks[i]);
            }
        }
    }
}

llama_token fast_sampler::sample(const float * logits) {
    llama_token_data_array arr;
    if (rbudget && common_reasoning_budget_get_state(rbudget.get()) == REASONING_BUDGET_FORCING) {
        // The budget forces a token: the whole vocabulary, as the common sampler sees it.
        cur.resize(n_vocab);
        for (int32_t i = 0; i < n_vocab; ++i) {
            cur[i] = { i, logits[i], 0.0f };
        }
        arr = { cur.data(), cur.size(), -1, false };
        llama_sampler_apply(rbudget.get(), &arr);
    } else {
        top_k_logits(logits, n_vocab, top_k, cur);
        arr = { cur.data(), cur.size(), -1, true };
    }
    llama_sampler_apply(chain.get(), &arr);
    if (arr.selected < 0 || arr.selected >= (int64_t) arr.size) {
        throw std::runtime_error("no token to sample (the logits are not numbers)");
    }
    const llama_token tok = arr.data[arr.selected].id;
    if (rbudget) {
        llama_sampler_accept(rbudget.get(), tok);
    }
    llama_sampler_accept(chain.get(), tok);
    return tok;
}

}  // namespace muse
