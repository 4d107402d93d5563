#include "engine/cpu/rope.h"

#include <cmath>

#include "engine/core/faults.h"

namespace popper::cpu {

void rope_neox(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base,
               std::vector<float>& cos_sin) {
  // theta for pair i is pos * base^(-2i/d), built by repeated multiplication in float as ggml's
  // rope does (theta_scale = powf(base, -2/d)), so positions agree with llama.cpp's tables.
  // Fault rope_position_plus_one: every token is rotated one position too far.
  if (fault_on(Fault::kRopePositionPlusOne)) pos0 += 1;
  const int64_t half = head_dim / 2;
  const float theta_scale = std::pow(freq_base, -2.0f / float(head_dim));
  cos_sin.resize(size_t(2 * half));
  float* cos_t = cos_sin.data();
  float* sin_t = cos_t + half;
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = float(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      cos_t[i] = std::cos(theta);
      sin_t[i] = std::sin(theta);
      theta *= theta_scale;
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
