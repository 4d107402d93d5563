// The model's weights, bound by name from a mapped GGUF file with shape and type checks at load.
//
// A wrong or missing tensor fails here with a message naming it
// ("m.gguf: blk.3.ffn_up_exps.weight: want [256, 256, 8], got [256, 255, 8]") — never later
// inside a matmul. These are views into the mapping (zero copy); the GgufFile must outlive them.
// They say what the file holds (names, shapes, types, bytes); a backend takes them once and keeps
// its own prepared copies (Backend::prepare, Model::weights_on), which are what the ops read.
#pragma once

#include <memory>
#include <vector>

#include "engine/core/result.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/prepared_weight.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/model/model_config.h"

namespace popper {

using cpu::WeightMatrix;
using cpu::WeightUse;

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

// One layer's tensors, declared once for the file's views (LayerWeights, below) and for a
// backend's handles to its prepared copies (PreparedLayer, prepared_weights.h). A tensor the arch
// does not have is empty (a null view, a null handle).
template <class Matrix, class Experts, class Norm>
struct LayerTensors {
  Norm attn_norm;    // [n_embd]
  Matrix wq;         // [n_embd, n_head * head_dim]
  Matrix wk;         // [n_embd, n_head_kv * head_dim]
  Matrix wv;         // [n_embd, n_head_kv * head_dim]
  Matrix wo;         // [n_head * head_dim, n_embd]
  Norm attn_q_norm;  // [head_dim], shared by every query head
  Norm attn_k_norm;  // [head_dim], shared by every key head
  Norm ffn_norm;     // [n_embd]
  // Dense FFN (qwen3)
  Matrix ffn_gate;  // [n_embd, n_ff]
  Matrix ffn_up;    // [n_embd, n_ff]
  Matrix ffn_down;  // [n_ff, n_embd]
  // MoE FFN (qwen3moe)
  Matrix ffn_gate_inp;    // [n_embd, n_expert] f32: router
  Experts ffn_gate_exps;  // [n_embd, n_ff_exp, n_expert]
  Experts ffn_up_exps;    // [n_embd, n_ff_exp, n_expert]
  Experts ffn_down_exps;  // [n_ff_exp, n_embd, n_expert]
};

// f(a.t, b.t) for every tensor field t of two layers (of any LayerTensors types: the file's views
// and a backend's handles, or one layer twice), in declaration order.
template <class A, class B, class F>
void for_each_layer_tensor(A& a, B& b, F&& f) {
  f(a.attn_norm, b.attn_norm);
  f(a.wq, b.wq);
  f(a.wk, b.wk);
  f(a.wv, b.wv);
  f(a.wo, b.wo);
  f(a.attn_q_norm, b.attn_q_norm);
  f(a.attn_k_norm, b.attn_k_norm);
  f(a.ffn_norm, b.ffn_norm);
  f(a.ffn_gate, b.ffn_gate);
  f(a.ffn_up, b.ffn_up);
  f(a.ffn_down, b.ffn_down);
  f(a.ffn_gate_inp, b.ffn_gate_inp);
  f(a.ffn_gate_exps, b.ffn_gate_exps);
  f(a.ffn_up_exps, b.ffn_up_exps);
  f(a.ffn_down_exps, b.ffn_down_exps);
}

template <class Matrix, class Experts, class Norm>
struct ModelTensors {
  Matrix token_embd;  // [n_embd, n_vocab]; rows are looked up one at a time
  Norm output_norm;   // [n_embd]
  Matrix output;      // [n_embd, n_vocab]; token_embd when the file has no output tensor
  std::vector<LayerTensors<Matrix, Experts, Norm>> layers;
};

// The file's views.
using LayerWeights = LayerTensors<WeightMatrix, ExpertWeights, NormWeight>;

struct ModelWeights : ModelTensors<WeightMatrix, ExpertWeights, NormWeight> {
  bool output_tied = false;  // true when `output` fell back to token_embd
  uint64_t bytes_total = 0;  // bytes of every bound tensor (for bandwidth figures)
};

// Binds every tensor the config's arch needs. Errors name the file and tensor.
Result<ModelWeights> bind_weights(const GgufFile& file, const ModelConfig& config);

// Bytes of weights one decode step reads: every layer's attention and norms, the router,
// n_expert_used experts (or the dense FFN), one embedding row, the output matrix.
uint64_t weight_bytes_per_token(const ModelWeights& weights, const ModelConfig& config);

}  // namespace popper
