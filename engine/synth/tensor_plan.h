// The tensors a Qwen3 / Qwen3-MoE GGUF holds, with llama.cpp's names and shapes, and the type
// each gets under a quantisation recipe.
//
// Q4_K_M follows llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for these archs:
// base type Q4_K; `output` Q6_K; `attn_v` and `ffn_down(_exps)` Q6_K on the layers
// use_more_bits(i, n) selects (the first and last eighth of the layers, and every third layer
// between); norms and the router (`ffn_gate_inp`) stay F32. For Qwen3-30B-A3B this gives 579
// tensors: 241 F32, 289 Q4_K, 49 Q6_K — the layout of the published Q4_K_M files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/ggml_type.h"
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

// llama.cpp's use_more_bits: which of n layers get the higher-precision type under *_M recipes.
bool use_more_bits(int64_t i_layer, int64_t n_layers);

// Every tensor of the model, in the order llama.cpp's converter writes them.
std::vector<PlannedTensor> plan_tensors(SynthArch arch, const SynthShape& shape, SynthQuant quant);

// LLAMA_FTYPE value for general.file_type: 0 all F32, 7 Q8_0, 15 Q4_K_M.
uint32_t synth_file_type(SynthQuant quant);

}  // namespace popper
