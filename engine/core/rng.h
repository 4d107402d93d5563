// Popper's own deterministic random numbers. Synthetic models must have the same bytes on every
// machine and compiler, so nothing here uses <random>'s distributions (their algorithms are
// implementation-defined) or libm transcendental functions (not correctly rounded everywhere).
// Only integer ops, IEEE +,-,*,/ and sqrt, which are exact everywhere.
#pragma once

#include <cstdint>

namespace popper {

// SplitMix64 (Steele, Lea, Flood 2014): used to seed and to derive independent streams.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman, Vigna 2018): fast, 256-bit state, passes BigCrush.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t sm = seed;
    for (auto& s : s_) s = splitmix64(sm);
  }
  // A stream for (seed, name-hash, index): the same tensor gets the same numbers whatever order
  // tensors are generated in.
  static Rng stream(uint64_t seed, uint64_t key) {
    uint64_t sm = seed ^ (key * 0xD1B54A32D192ED03ull);
    return Rng(splitmix64(sm));
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 24 bits, exactly representable in float.
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n) (n > 0); the tiny modulo bias is irrelevant here.
  uint64_t below(uint64_t n) { return next() % n; }
  // Approximately standard normal: Irwin-Hall sum of 12 uniforms minus 6 (variance 1,
  // support [-6, 6]). Chosen because it needs no libm and is bit-identical everywhere.
  float normal() {
    double sum = 0.0;
    for (int i = 0; i < 12; ++i) sum += static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
    return static_cast<float>(sum - 6.0);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// FNV-1a of a string, for Rng::stream keys derived from tensor names.
inline uint64_t fnv1a64(const char* s, uint64_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
  return h;
}

}  // namespace popper
