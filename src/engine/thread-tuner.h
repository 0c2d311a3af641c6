#pragma once
// The thread count per decode call (engine_params::adaptive_threads). Private to src/engine
// (and its tests).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace muse {

// The thread count per decode call (engine_params::adaptive_threads): for each batch-size
// bucket, a running mean of microseconds per token for each candidate count; the fastest is
// used, each is tried up to k_probe times first (every thread first of all), and another is
// tried again every k_reprobe calls (every 8 * k_reprobe when it was half again as slow). Calls
// of more than k_tune_max_tokens tokens, or whose time with every thread is over
// k_tune_max_call_us, always use every thread: only where a call is short can the barriers
// between threads cost more than the work they share.
class thread_tuner {
  public:
    void    init(int32_t n_threads, bool adaptive);
    int32_t pick(int32_t n_tokens);  // the thread count for a call of n_tokens
    void    record(int32_t n_tokens, int32_t n_threads, int64_t us);
    // The cost of a decode call of n tokens with n_threads threads, fitted to recent calls of
    // up to k_fit_tokens tokens as a + b * n microseconds (a: what a call costs whatever it
    // carries, b: each token). False until the calls seen vary enough in size to tell.
    bool    cost(int32_t n_threads, double & a, double & b) const;

  private:
    static constexpr int k_buckets  = 16;
    static constexpr int k_max_arms = 12;
    static constexpr int k_probe    = 3;
    static constexpr int k_reprobe  = 64;
    static constexpr int k_fit_tokens = 64;
    static constexpr int    k_tune_max_tokens  = 64;      // longer calls use every thread
    static constexpr double k_tune_max_call_us = 4000.0;  // and so do calls that take longer
    struct fit {  // exponentially weighted sums of 1, n, n^2, t, n t
        double w = 0, sn = 0, snn = 0, st = 0, snt = 0;
    };
    fit fits[k_max_arms];
    struct arm {
        double  us_per_token = 0;
        int32_t n            = 0;
    };
    struct bucket {
        arm      arms[k_max_arms];
        uint32_t calls = 0;
        uint32_t turn  = 0;  // the count tried again last
    };
    static int bucket_of(int32_t n_tokens);
    std::vector<int32_t> counts;  // candidate thread counts, largest first
    bucket               buckets[k_buckets];
};

}  // namespace muse
