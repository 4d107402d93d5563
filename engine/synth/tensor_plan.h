// The tensors a Qwen3 / Qwen3-MoE GGUF holds, with llama.cpp's names and shapes, and the type
// each gets under a quantisation recipe.
//
// The types come from engine/quant/recipe.h, the same table `popper quantize` uses: llama.cpp's
// llama_tensor_get_type for these archs. Under Q4_K_M, Qwen3-30B-A3B (128 experts) gets 579
// tensors: 241 F32, 289 Q4_K, 49 Q6_K — the layout of the published Q4_K_M files. The tiny
// qwen3moe preset has 8 experts, so llama.cpp's 8-expert rule also applies to it: attn_v and
// attn_k Q8_0, attn_output Q5_K.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/quant/recipe.h"
#include "engine/synth/synth.h"

namespace popper {

// How a tensor's values are drawn (see weights.h).
enum class TensorRole { kEmbedding, kProjection, kNorm, kRouter, kOutput };

struct PlannedTensor {
  std::string name;
  std::vector<int64_t> dims;  // dims[0] contiguous, as in GGUF
  GgmlType type;
  TensorRole role;
  int64_t fan_in;  // inputs per output, for weight scaling
};

// Every tensor of the model, in the order llama.cpp's converter writes them.
std::vector<PlannedTensor> plan_tensors(SynthArch arch, const SynthShape& shape, SynthQuant quant);

// The recipe a synth quant names, and its LLAMA_FTYPE value for general.file_type (0 all F32,
// 7 Q8_0, 15 Q4_K_M).
QuantFtype synth_ftype(SynthQuant quant);
uint32_t synth_file_type(SynthQuant quant);

}  // namespace popper
