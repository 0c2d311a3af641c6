// Internal: a PRNG whose output is fixed by its seed on every platform and standard library.
//
// std::mt19937_64 is portable but std::*_distribution are not (their algorithms are left to
// the implementation), and byte-identical files are a promise of this tool. So: SplitMix64
// to expand the seed, xoshiro256** for the stream, and our own float conversion.
#pragma once

#include <cstdint>
#include <string_view>

namespace muse::mkmodel {

inline uint64_t splitmix64(uint64_t & state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// FNV-1a: a stable hash of tensor names (std::hash may differ between library versions).
inline uint64_t hash_name(std::string_view name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : name) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    return h;
}

class rng {
  public:
    explicit rng(uint64_t seed) {
        for (uint64_t & s : s_) {
            s = splitmix64(seed);
        }
    }

    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t      = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform in [-1, 1): the top 24 bits give every representable step of a float mantissa.
    float next_symmetric() { return static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f; }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    uint64_t s_[4];
};

}  // namespace muse::mkmodel
