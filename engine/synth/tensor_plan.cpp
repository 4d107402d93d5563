#include "engine/synth/tensor_plan.h"

#include "engine/core/result.h"
#include "engine/quant/recipe.h"

namespace popper {

QuantFtype synth_ftype(SynthQuant quant) {
  switch (quant) {
    case SynthQuant::kF32:
      return QuantFtype::kAllF32;
    case SynthQuant::kQ8_0:
      return QuantFtype::kQ8_0;
    case SynthQuant::kQ4_K_M:
      return QuantFtype::kQ4_K_M;
  }
  return QuantFtype::kAllF32;
}

uint32_t synth_file_type(SynthQuant quant) { return static_cast<uint32_t>(synth_ftype(quant)); }

std::vector<PlannedTensor> plan_tensors(SynthArch arch, const SynthShape& s, SynthQuant quant) {
  const int64_t q_dim = s.n_head * s.head_dim;
  const int64_t kv_dim = s.n_head_kv * s.head_dim;
  std::vector<PlannedTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> dims, TensorRole role, int64_t fan_in) {
    out.push_back({std::move(name), std::move(dims), GgmlType::F32, role, fan_in});
  };

  add("token_embd.weight", {s.n_embd, s.n_vocab}, TensorRole::kEmbedding, 1);
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, TensorRole::kNorm, 1);
    add(p + "attn_q.weight", {s.n_embd, q_dim}, TensorRole::kProjection, s.n_embd);
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, TensorRole::kProjection, s.n_embd);
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, TensorRole::kProjection, s.n_embd);
    add(p + "attn_output.weight", {q_dim, s.n_embd}, TensorRole::kProjection, q_dim);
    add(p + "attn_k_norm.weight", {s.head_dim}, TensorRole::kNorm, 1);
    add(p + "attn_q_norm.weight", {s.head_dim}, TensorRole::kNorm, 1);
    add(p + "ffn_norm.weight", {s.n_embd}, TensorRole::kNorm, 1);
    if (arch == SynthArch::kQwen3Moe) {
      add(p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, TensorRole::kRouter, s.n_embd);
      add(p + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, TensorRole::kProjection, s.n_embd);
      add(p + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert}, TensorRole::kProjection,
          s.n_ff_exp);
      add(p + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, TensorRole::kProjection, s.n_embd);
    } else {
      add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, TensorRole::kProjection, s.n_embd);
      add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, TensorRole::kProjection, s.n_ff);
      add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, TensorRole::kProjection, s.n_embd);
    }
  }
  add("output_norm.weight", {s.n_embd}, TensorRole::kNorm, 1);
  add("output.weight", {s.n_embd, s.n_vocab}, TensorRole::kOutput, s.n_embd);

  // The types come from the recipe table llama-quantize's rules live in (engine/quant/recipe.h).
  std::vector<RecipeTensor> view;
  view.reserve(out.size());
  for (const auto& t : out) view.push_back({t.name, t.dims, t.type});
  const RecipeModel model{synth_arch_name(arch), s.n_layer, arch == SynthArch::kQwen3Moe ? s.n_expert : 0};
  auto choices = plan_quant_types(synth_ftype(quant), model, view);
  // The synthetic shapes are built for every recipe (row lengths are multiples of 256).
  POPPER_CHECK(choices.ok(), "synth recipe: ", choices.ok() ? "" : choices.message());
  for (size_t i = 0; i < out.size(); ++i) out[i].type = (*choices)[i].type;
  return out;
}

}  // namespace popper
