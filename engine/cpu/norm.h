// RMS norm (Qwen3's attn_norm, ffn_norm, output_norm and the per-head Q/K norms).
#pragma once

#include <cstdint>

namespace popper::cpu {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, the sum of squares in double as ggml's
// rms_norm does (ggml_float). x, y: [n_rows, n] f32 (may alias); w: [n] f32. The per-head norm is
// this over [n_tokens * n_heads, head_dim] with a [head_dim] w.
void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y);

}  // namespace popper::cpu
