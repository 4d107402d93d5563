#include "engine/cpu/rope.h"

#include <cmath>

#include "engine/core/faults.h"

namespace popper::cpu {

void rope_neox(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base,
               std::vector<float>& cos_sin) {
  // theta for pair i is pos * inv_freq_i with inv_freq_i = 1 / base^(2i/d), each step one float
  // operation, as transformers computes it (one rounding of pos * inv_freq). Building theta by
  // repeated multiplication (ggml's theta *= base^(-2/d)) instead accumulates one rounding per
  // pair, an error that grows with the position (on the first trained dense model it put a logit
  // 1.09e-4 from transformers' at the longest prompts; 2.1e-5 with this form).
  // Fault rope_position_plus_one: every token is rotated one position too far.
  if (fault_on(Fault::kRopePositionPlusOne)) pos0 += 1;
  const int64_t half = head_dim / 2;
  cos_sin.resize(size_t(3 * half));
  float* inv_freq = cos_sin.data();
  float* cos_t = inv_freq + half;
  float* sin_t = cos_t + half;
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0f / std::pow(freq_base, float(2 * i) / float(head_dim));
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float pos = float(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      const float theta = pos * inv_freq[i];
      cos_t[i] = std::cos(theta);
      sin_t[i] = std::sin(theta);
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos_t[i] - b * sin_t[i];
        v[i + half] = a * sin_t[i] + b * cos_t[i];
      }
    }
  }
}

}  // namespace popper::cpu
