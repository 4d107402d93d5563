#include "engine/synth/tensor_plan.h"

namespace popper {
namespace {

GgmlType base_type(SynthQuant quant) {
  switch (quant) {
    case SynthQuant::kF32: return GgmlType::F32;
    case SynthQuant::kQ8_0: return GgmlType::Q8_0;
    case SynthQuant::kQ4_K_M: return GgmlType::Q4_K;
  }
  return GgmlType::F32;
}

}  // namespace

bool use_more_bits(int64_t i_layer, int64_t n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

uint32_t synth_file_type(SynthQuant quant) {
  switch (quant) {
    case SynthQuant::kF32: return 0;
    case SynthQuant::kQ8_0: return 7;
    case SynthQuant::kQ4_K_M: return 15;
  }
  return 0;
}

std::vector<PlannedTensor> plan_tensors(SynthArch arch, const SynthShape& s, SynthQuant quant) {
  const GgmlType base = base_type(quant);
  const bool k_m = quant == SynthQuant::kQ4_K_M;
  const int64_t q_dim = s.n_head * s.head_dim;
  const int64_t kv_dim = s.n_head_kv * s.head_dim;
  std::vector<PlannedTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> dims, GgmlType type, TensorRole role, int64_t fan_in) {
    out.push_back({std::move(name), std::move(dims), type, role, fan_in});
  };

  // Token embeddings keep the base type under Q4_K_M (llama.cpp only changes them for IQ types).
  add("token_embd.weight", {s.n_embd, s.n_vocab}, base, TensorRole::kEmbedding, 1);
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const GgmlType more_bits = k_m && use_more_bits(il, s.n_layer) ? GgmlType::Q6_K : base;
    add(p + "attn_norm.weight", {s.n_embd}, GgmlType::F32, TensorRole::kNorm, 1);
    add(p + "attn_q.weight", {s.n_embd, q_dim}, base, TensorRole::kProjection, s.n_embd);
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, base, TensorRole::kProjection, s.n_embd);
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, more_bits, TensorRole::kProjection, s.n_embd);
    add(p + "attn_output.weight", {q_dim, s.n_embd}, base, TensorRole::kProjection, q_dim);
    add(p + "attn_k_norm.weight", {s.head_dim}, GgmlType::F32, TensorRole::kNorm, 1);
    add(p + "attn_q_norm.weight", {s.head_dim}, GgmlType::F32, TensorRole::kNorm, 1);
    add(p + "ffn_norm.weight", {s.n_embd}, GgmlType::F32, TensorRole::kNorm, 1);
    if (arch == SynthArch::kQwen3Moe) {
      add(p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, GgmlType::F32, TensorRole::kRouter, s.n_embd);
      add(p + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, base, TensorRole::kProjection, s.n_embd);
      add(p + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert}, more_bits, TensorRole::kProjection,
          s.n_ff_exp);
      add(p + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, base, TensorRole::kProjection, s.n_embd);
    } else {
      add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, base, TensorRole::kProjection, s.n_embd);
      add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, more_bits, TensorRole::kProjection, s.n_ff);
      add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, base, TensorRole::kProjection, s.n_embd);
    }
  }
  add("output_norm.weight", {s.n_embd}, GgmlType::F32, TensorRole::kNorm, 1);
  add("output.weight", {s.n_embd, s.n_vocab}, k_m ? GgmlType::Q6_K : base, TensorRole::kOutput, s.n_embd);
  return out;
}

}  // namespace popper
