// The fast top-k sampler against llama.cpp's own samplers on the whole vocabulary: the same
// candidates, and the same token for the same logits and seed.

#include "engine/fast-sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

using namespace muse;

namespace {

std::vector<float> random_logits(std::mt19937 & rng, int32_t n, float scale) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float>              v(n);
    for (auto & x : v) {
        x = nd(rng);
    }
    return v;
}

// llama.cpp's chain for the same parameters on the whole vocabulary, as the common sampler runs it.
struct reference_sampler {
    llama_sampler * chain;
    explicit reference_sampler(const common_params_sampling & s) {
        chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(chain, llama_sampler_init_top_k(s.top_k));
        llama_sampler_chain_add(chain, llama_sampler_init_top_p(s.top_p, 0));
        llama_sampler_chain_add(chain, llama_sampler_init_min_p(s.min_p, 0));
        llama_sampler_chain_add(chain, llama_sampler_init_temp_ext(s.temp, 0.0f, 1.0f));
        llama_sampler_chain_add(chain, llama_sampler_init_dist(s.seed));
    }
    ~reference_sampler() { llama_sampler_free(chain); }
    llama_token sample(const std::vector<float> & logits) {
        std::vector<llama_token_data> cur(logits.size());
        for (size_t i = 0; i < logits.size(); ++i) {
            cur[i] = { (llama_token) i, logits[i], 0.0f };
        }
        llama_token_data_array arr = { cur.data(), cur.size(), -1, false };
        llama_sampler_apply(chain, &arr);
        const llama_token t = arr.data[arr.selected].id;
        llama_sampler_accept(chain, t);
        return t;
    }
};

}  // namespace

// llama.cpp's top-k for k <= 128: std::partial_sort of the whole candidate array by logit.
std::vector<llama_token_data> llama_top_k(const std::vector<float> & v, int32_t k) {
    std::vector<llama_token_data> cur(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        cur[i] = { (llama_token) i, v[i], 0.0f };
    }
    k = std::min<int32_t>(k, (int32_t) cur.size());
    std::partial_sort(cur.begin(), cur.begin() + k, cur.end(),
                      [](const llama_token_data & a, const llama_token_data & b) { return a.logit > b.logit; });
    cur.resize(k);
    return cur;
}

TEST(fast_sampler, top_k_matches_llama_cpp_ties_included) {
    std::mt19937 rng(1);
    // Both paths: the whole array (small vocabularies) and the heap tracking (large ones).
    for (int32_t n : { 1, 5, 63, 64, 65, 1000, 8192, 8193, 151936 }) {
        for (int32_t k : { 1, 2, 40, 128 }) {
            for (bool ties : { false, true }) {
                auto v = random_logits(rng, n, 3.0f);
                if (ties) {
                    for (auto & x : v) {
                        x = std::round(x * 4.0f) / 4.0f;  // a few dozen distinct values
                    }
                }
                if (n > 10) {
                    v[n / 2] = -INFINITY;
                    v[n - 1] = 50.0f;  // the last element is the largest
                }
                std::vector<llama_token_data> got;
                top_k_logits(v.data(), n, k, got);
                const auto ref = llama_top_k(v, k);
                ASSERT_EQ(got.size(), ref.size()) << "n " << n << " k " << k;
                for (size_t i = 0; i < ref.size(); ++i) {
                    ASSERT_EQ(got[i].id, ref[i].id) << "n " << n << " k " << k << " ties " << ties << " rank " << i;
                    ASSERT_EQ(got[i].logit, ref[i].logit);
                }
                if (n > 10) {
                    EXPECT_EQ(got[0].id, n - 1);
                }
            }
        }
    }
    // A NaN among the first k takes the whole-array path and still agrees.
    auto v = random_logits(rng, 5000, 1.0f);
    v[3]   = NAN;
    std::vector<llama_token_data> got;
    top_k_logits(v.data(), 5000, 40, got);
    const auto ref = llama_top_k(v, 40);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_EQ(got[i].id, ref[i].id) << "rank " << i;
    }
}

TEST(fast_sampler, picks_the_same_tokens_as_llama_cpp_on_the_whole_vocabulary) {
    struct cfg {
        float   temp;
        int32_t top_k;
        float   top_p, min_p, scale;
    };
    const cfg cfgs[] = {
        { 0.8f, 40, 0.95f, 0.05f, 2.0f },  // the defaults
        { 1.5f, 40, 1.0f, 0.0f, 1.0f },    // flat: many candidates survive
        { 0.3f, 5, 0.5f, 0.1f, 4.0f },     // peaked
        { 1.0f, 128, 0.99f, 0.0f, 0.5f },
        { 0.7f, 1, 0.95f, 0.05f, 2.0f },   // top-1: always the argmax
        { 0.0f, 40, 0.95f, 0.05f, 2.0f },  // greedy: among equal maxima, the one llama.cpp's top-k puts first
    };
    std::mt19937 rng(7);
    int          distinct_total = 0;
    int          not_lowest_id  = 0;  // greedy draws where llama.cpp's choice is not the first maximum
    for (int32_t n_vocab : { 4096, 20000 }) {  // the whole-array path and the heap tracking
    for (const auto & c : cfgs) {
        common_params_sampling sp;
        sp.temp  = c.temp;
        sp.top_k = c.top_k;
        sp.top_p = c.top_p;
        sp.min_p = c.min_p;
        sp.seed  = 1234;
        ASSERT_TRUE(fast_sampler::supports(sp, 0));
        fast_sampler      fast(nullptr, n_vocab, sp);
        reference_sampler ref(sp);
        std::vector<llama_token> seen;
        for (int i = 0; i < 300; ++i) {
            auto v = random_logits(rng, n_vocab, c.scale);
            if (i % 2) {
                for (auto & x : v) {
                    x = std::round(x * 8.0f) / 8.0f;  // equal logits, as quantised random models give
                }
            }
            const llama_token a = fast.sample(v.data());
            const llama_token b = ref.sample(v);
            ASSERT_EQ(a, b) << "draw " << i << " temp " << c.temp << " top_k " << c.top_k;
            const llama_token first_max = (llama_token) (std::max_element(v.begin(), v.end()) - v.begin());
            if (c.top_k == 1) {
                EXPECT_EQ(a, first_max);
            }
            if (c.temp == 0) {
                EXPECT_EQ(v[a], v[first_max]) << "greedy takes a largest logit";
                not_lowest_id += a != first_max;
            }
            seen.push_back(a);
        }
        std::sort(seen.begin(), seen.end());
        distinct_total += (int) (std::unique(seen.begin(), seen.end()) - seen.begin());
    }
    }
    EXPECT_GT(distinct_total, 300) << "the draws are random, not one token over and over";
    EXPECT_GT(not_lowest_id, 0) << "equal maxima where an argmax by lowest id would differ from llama.cpp";
}

TEST(fast_sampler, covers_only_what_it_can_sample_exactly) {
    common_params_sampling sp;  // llama.cpp's defaults: temperature 0.8, top-k 40
    EXPECT_TRUE(fast_sampler::supports(sp, 0));
    EXPECT_FALSE(fast_sampler::supports(sp, 3)) << "suppressed tokens";
    auto t = sp;
    t.temp = 0;
    EXPECT_TRUE(fast_sampler::supports(t, 0)) << "greedy, with llama.cpp's tie order";
    t       = sp;
    t.top_k = 0;
    EXPECT_FALSE(fast_sampler::supports(t, 0)) << "the whole vocabulary";
    t       = sp;
    t.top_k = 129;
    EXPECT_FALSE(fast_sampler::supports(t, 0));
    t                = sp;
    t.penalty_repeat = 1.1f;
    EXPECT_FALSE(fast_sampler::supports(t, 0));
    t              = sp;
    t.penalty_freq = 0.5f;
    EXPECT_FALSE(fast_sampler::supports(t, 0));
    t                = sp;
    t.dry_multiplier = 0.8f;
    EXPECT_FALSE(fast_sampler::supports(t, 0)) << "a sampler the fast chain does not have";
    t         = sp;
    t.grammar = { COMMON_GRAMMAR_TYPE_USER, "root ::= \"a\"" };
    EXPECT_FALSE(fast_sampler::supports(t, 0));
}
