// Rotary position embedding, NeoX pairing (Qwen3: llama.cpp's LLAMA_ROPE_TYPE_NEOX).
#pragma once

#include <cstdint>
#include <vector>

namespace popper::cpu {

// In place, token t at position pos0 + t: the pair (x[i], x[i + head_dim/2]) of every head rotates
// by theta_i = pos * freq_base^(-2i/head_dim). x: [n_tokens, n_heads, head_dim] f32.
// cos_sin: scratch, grown to head_dim floats (one token's cos and sin tables).
void rope_neox(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base,
               std::vector<float>& cos_sin);

}  // namespace popper::cpu
