// The MoE feed-forward block (qwen3moe): each token's k routed experts, each a SwiGLU FFN, summed
// with the router's weights. Tokens are grouped by expert so each selected expert's weights are
// read once per call, however many tokens chose it.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/ffn.h"
#include "engine/cpu/project.h"

namespace popper::cpu {

// Scratch of moe_ffn(), reused across calls. The (token, slot) assignments grouped by expert:
// expert e owns rows [expert_offset[e], expert_offset[e] + expert_count[e]) of the grouped
// buffers, and assignment a = t * k + s is grouped row slot_row[a].
struct MoeFfnScratch {
  std::vector<int64_t> expert_count;    // [n_expert]
  std::vector<int64_t> expert_offset;   // [n_expert]
  std::vector<int64_t> expert_fill;     // [n_expert] rows placed so far, while grouping
  std::vector<int64_t> slot_row;        // [n_tokens * k]
  std::vector<int32_t> active_experts;  // experts with at least one row, ascending
  std::vector<float> x;                 // [n_assign, n_embd] grouped input rows
  std::vector<float> gate, up;          // [n_assign, n_ff] gate and up outputs; gate then silu(gate) * up
  std::vector<float> down;              // [n_assign, n_embd] down outputs
  // Per expert, its grouped rows in an activation format: the input in the gate's format and (when
  // it differs) the up's, and silu(gate) * up in the down's.
  std::vector<QuantizedActivations> x_gate_format, x_up_format, mid;
  QuantizedActivations x_all;  // fused path: every token's input, quantised once

  std::vector<MatmulJob> jobs;
};

// Repacked experts (prepared_weight.h) take the fused path: the layer's input quantised once and
// gathered per expert, then work items of (expert, kSwigluChunk rows) that compute gate and up
// together, write silu(gate) * up already quantised for down (swiglu.h) and are handed to the
// threads dynamically, so experts with more tokens balance; then the down matmuls. Same bits as
// the unfused path on the same layout.
//
// out[t] = sum over slots s of weights[t, s] * down_e(silu(gate_e x[t]) * up_e x[t]), e = ids[t, s],
// summed in slot order, so a batch and single tokens give the same bits. w: the three expert
// tensors ([n_embd, n_ff, n_expert], [n_embd, n_ff, n_expert], [n_ff, n_embd, n_expert]).
// x, out: [n_tokens, n_embd] f32; ids, weights: [n_tokens, k] as moe_route writes them.
void moe_ffn(const FfnWeights& w, const float* x, int64_t n_tokens, const int32_t* ids, const float* weights,
             int64_t k, float* out, MoeFfnScratch& scratch, Projector& projector, ThreadPool& pool);

}  // namespace popper::cpu
