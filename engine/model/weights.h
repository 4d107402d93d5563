// The model's weights, bound by name from a mapped GGUF file with shape and type checks at load.
//
// A wrong or missing tensor fails here with a message naming it
// ("m.gguf: blk.3.ffn_up_exps.weight: want [256, 256, 8], got [256, 255, 8]") — never later
// inside a matmul. Weights are views into the mapping (zero copy); the GgufFile must outlive them.
#pragma once

#include <memory>
#include <vector>

#include "engine/core/result.h"
#include "engine/cpu/matmul.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/model/model_config.h"

namespace popper {

using cpu::WeightMatrix;

// A norm weight: [n] f32.
struct NormWeight {
  const float* data = nullptr;
  int64_t n = 0;
};

// An expert tensor [n_in, n_out, n_expert] seen as one matrix of n_out * n_expert rows;
// expert e is rows [e * n_out, (e + 1) * n_out).
struct ExpertWeights {
  WeightMatrix all;
  int64_t n_out = 0;
  int64_t n_expert = 0;
  WeightMatrix expert(int64_t e) const { return all.rows(e * n_out, n_out); }
};

struct LayerWeights {
  NormWeight attn_norm;     // [n_embd]
  WeightMatrix wq;          // [n_embd, n_head * head_dim]
  WeightMatrix wk;          // [n_embd, n_head_kv * head_dim]
  WeightMatrix wv;          // [n_embd, n_head_kv * head_dim]
  WeightMatrix wo;          // [n_head * head_dim, n_embd]
  NormWeight attn_q_norm;   // [head_dim], shared by every query head
  NormWeight attn_k_norm;   // [head_dim], shared by every key head
  NormWeight ffn_norm;      // [n_embd]
  // Dense FFN (qwen3)
  WeightMatrix ffn_gate;    // [n_embd, n_ff]
  WeightMatrix ffn_up;      // [n_embd, n_ff]
  WeightMatrix ffn_down;    // [n_ff, n_embd]
  // MoE FFN (qwen3moe)
  WeightMatrix ffn_gate_inp;    // [n_embd, n_expert] f32: router
  ExpertWeights ffn_gate_exps;  // [n_embd, n_ff_exp, n_expert]
  ExpertWeights ffn_up_exps;    // [n_embd, n_ff_exp, n_expert]
  ExpertWeights ffn_down_exps;  // [n_ff_exp, n_embd, n_expert]
};

struct ModelWeights {
  WeightMatrix token_embd;  // [n_embd, n_vocab]; rows are dequantised one at a time
  NormWeight output_norm;   // [n_embd]
  WeightMatrix output;      // [n_embd, n_vocab]; token_embd when the file has no output tensor
  bool output_tied = false; // true when `output` fell back to token_embd
  std::vector<LayerWeights> layers;
  uint64_t bytes_total = 0;  // bytes of every bound tensor (for bandwidth figures)
};

// Binds every tensor the config's arch needs. Errors name the file and tensor.
Result<ModelWeights> bind_weights(const GgufFile& file, const ModelConfig& config);

// Bytes of weights one decode step reads: every layer's attention and norms, the router,
// n_expert_used experts (or the dense FFN), one embedding row, the output matrix.
uint64_t weight_bytes_per_token(const ModelWeights& weights, const ModelConfig& config);

}  // namespace popper
