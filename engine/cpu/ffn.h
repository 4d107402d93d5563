// The dense SwiGLU feed-forward block (qwen3): out = down(silu(gate x) * up x).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/prepared_weight.h"
#include "engine/cpu/project.h"

namespace popper::cpu {

// The three matrices of a SwiGLU FFN: gate, up [n_embd, n_ff] and down [n_ff, n_embd] (for the MoE
// FFN, each with n_expert experts).
struct FfnWeights {
  const PreparedWeight* gate;
  const PreparedWeight* up;
  const PreparedWeight* down;
};

// Scratch of dense_ffn(): the gate and up projections, [n_tokens, n_ff] f32 each.
struct DenseFfnScratch {
  std::vector<float> gate, up;
};

// out = down(silu(gate x) * up x). x, out: [n_tokens, n_embd] f32.
void dense_ffn(const FfnWeights& w, const float* x, int64_t n_tokens, float* out, DenseFfnScratch& scratch,
               Projector& projector, ThreadPool& pool);

}  // namespace popper::cpu
