#include "thread-tuner.h"

namespace muse {

void thread_tuner::init(int32_t n_threads, bool adaptive) {
    counts.clear();
    counts.push_back(n_threads);
    for (int32_t n = n_threads / 2; adaptive && n >= 1 && (int) counts.size() < k_max_arms; n /= 2) {
        counts.push_back(n);
    }
}

int thread_tuner::bucket_of(int32_t n_tokens) {
    int b = 0;
    while (b + 1 < k_buckets && (n_tokens >> (b + 1)) > 0) {
        b++;
    }
    return b;
}

int32_t thread_tuner::pick(int32_t n_tokens) {
    // Only short calls are tuned: in a long one (many tokens, or a big model) the barriers'
    // cost is small next to the arithmetic, and a probe with fewer threads would cost much.
    if (counts.size() == 1 || n_tokens > k_tune_max_tokens) {
        return counts[0];
    }
    const int b  = bucket_of(n_tokens);
    bucket &  bk = buckets[b];
    bk.calls++;
    if (bk.calls == 1) {
        // A batch size not seen yet starts with the count that is fastest for the nearest size
        // where every count was measured (else where any was): a prompt's one big call should
        // not be the probe of a slow count. Its other counts are probed on its next calls.
        for (bool all : { true, false }) {
            for (int d = 1; d < k_buckets; ++d) {
                for (int nb : { b - d, b + d }) {
                    if (nb < 0 || nb >= k_buckets) {
                        continue;
                    }
                    const bucket & o    = buckets[nb];
                    int            best = -1;
                    bool           full = true;
                    for (size_t i = 0; i < counts.size(); ++i) {
                        full = full && o.arms[i].n > 0;
                        if (o.arms[i].n > 0 && (best < 0 || o.arms[i].us_per_token < o.arms[best].us_per_token)) {
                            best = (int) i;
                        }
                    }
                    if (best >= 0 && (full || !all)) {
                        return counts[best];
                    }
                }
            }
        }
    }
    // The fastest count measured so far, then any count still to probe: one whose first
    // calls were not clearly slower (a count that took half again as long is not tried again
    // until the next round of probes).
    size_t best = 0;
    for (size_t i = 1; i < counts.size(); ++i) {
        if (bk.arms[i].n > 0 && (bk.arms[best].n == 0 || bk.arms[i].us_per_token < bk.arms[best].us_per_token)) {
            best = i;
        }
    }
    const double best_us = bk.arms[best].us_per_token;
    const arm &  all     = bk.arms[0];  // every thread: measured first, and the default
    if (all.n == 0 || all.us_per_token * n_tokens > k_tune_max_call_us) {
        return counts[0];
    }
    for (size_t i = 0; i < counts.size(); ++i) {
        if (bk.arms[i].n == 0) {
            return counts[i];  // counts never measured here next
        }
    }
    for (size_t i = 0; i < counts.size(); ++i) {
        const arm & a = bk.arms[i];
        if (a.n < k_probe && a.us_per_token < 1.5 * best_us) {
            return counts[i];
        }
    }
    if (bk.calls % k_reprobe == 0) {
        // Now and then the next count after the best, in turn, again: the load may have
        // changed which is fastest.
        bk.turn = (bk.turn + 1) % (uint32_t) counts.size();
        if (bk.turn == best) {
            bk.turn = (bk.turn + 1) % (uint32_t) counts.size();
        }
        if (bk.arms[bk.turn].us_per_token < 1.5 * best_us || bk.calls % (8 * k_reprobe) == 0) {
            return counts[bk.turn];
        }
    }
    return counts[best];
}

void thread_tuner::record(int32_t n_tokens, int32_t n_threads, int64_t us) {
    if (n_tokens <= 0) {
        return;
    }
    bucket & bk = buckets[bucket_of(n_tokens)];
    for (size_t i = 0; i < counts.size(); ++i) {
        if (counts[i] == n_threads && n_tokens <= k_fit_tokens) {
            fit &        f = fits[i];
            const double n = n_tokens, t = (double) us;
            f.w   = 0.98 * f.w + 1;
            f.sn  = 0.98 * f.sn + n;
            f.snn = 0.98 * f.snn + n * n;
            f.st  = 0.98 * f.st + t;
            f.snt = 0.98 * f.snt + n * t;
        }
        if (counts[i] == n_threads && counts.size() > 1) {
            arm &        a = bk.arms[i];
            const double v = (double) us / n_tokens;
            a.us_per_token = a.n == 0 ? v : 0.8 * a.us_per_token + 0.2 * v;
            a.n            = a.n < (1 << 30) ? a.n + 1 : a.n;
            return;
        }
    }
}

bool thread_tuner::cost(int32_t n_threads, double & a, double & b) const {
    for (size_t i = 0; i < counts.size(); ++i) {
        if (counts[i] != n_threads) {
            continue;
        }
        const fit &  f   = fits[i];
        const double var = f.w * f.snn - f.sn * f.sn;  // w^2 times the variance of n
        if (f.w < 8 || var < 0.25 * f.w * f.w) {
            return false;  // too few calls, or sizes too alike to separate a from b
        }
        b = (f.w * f.snt - f.sn * f.st) / var;
        a = (f.st - b * f.sn) / f.w;
        return true;
    }
    return false;
}

}  // namespace muse
