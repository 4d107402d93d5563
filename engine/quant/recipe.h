// Quantisation recipes: which ggml type each tensor of a Qwen3 / Qwen3-MoE model gets under a
// llama.cpp file type (LLAMA_FTYPE_*). One table of rules serves `popper synth` (which draws
// weights straight into the chosen types) and `popper quantize` (which converts float weights).
//
// The rules are llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) restricted to the archs
// Popper runs and the file types it offers, with no imatrix, no --pure and no overrides:
//  - only tensors of 2+ dims whose name ends in "weight" are quantised; norms (`*_norm.weight`)
//    and the MoE router (`ffn_gate_inp.weight`) keep their input type;
//  - `output.weight` (and `token_embd.weight` when there is no `output.weight`, i.e. tied
//    embeddings) gets Q6_K unless the file type is Q8_0 (then Q8_0), or Q8_0 when its row length
//    is not a multiple of the base type's block size; an untied `token_embd` keeps the base type;
//  - Q4_K_M and Q5_K_M give `attn_v` Q6_K on the layers use_more_bits picks (the first and last
//    eighth, and every third layer between), counted over the attn_v tensors in llama.cpp's
//    tensor order, and `ffn_down` / `ffn_down_exps` Q6_K on the layers use_more_bits picks;
//  - a model with exactly 8 experts (llama.cpp's Mixtral rule, applied to any arch) gets
//    `attn_v` and `attn_k` in Q8_0 under every file type, and `attn_output` Q5_K under Q4_K_M.
// Where llama.cpp would fall back to another type because a row length is not a multiple of the
// block size (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), this is an error naming the tensor:
// Popper has no kernels for the 32-blocks llama.cpp falls back to, and a silent change of type
// is not what the caller asked for.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"

namespace popper {

// The values are LLAMA_FTYPE_* (llama.h), written as general.file_type.
enum class QuantFtype : uint32_t {
  kAllF32 = 0,
  kQ8_0 = 7,
  kQ4_K_M = 15,
  kQ5_K_M = 17,
  kQ6_K = 18,
};

// "f32", "q8_0", "q4_k_m", "q5_k_m", "q6_k" (case-insensitive); the error lists the choices.
Result<QuantFtype> parse_quant_ftype(std::string_view name);
const char* quant_ftype_name(QuantFtype ftype);  // "q4_k_m"
// The type every quantised tensor starts from before the per-tensor rules (F32 for kAllF32).
GgmlType quant_ftype_base_type(QuantFtype ftype);

// llama.cpp's use_more_bits: which of n layers get the higher-precision type under *_M recipes.
bool use_more_bits(int64_t i_layer, int64_t n_layers);

// What the rules read from the model's metadata.
struct RecipeModel {
  std::string arch;      // general.architecture; "qwen3" or "qwen3moe"
  int64_t n_layer = 0;   // {arch}.block_count
  int64_t n_expert = 0;  // {arch}.expert_count (0 for dense models)
};

struct RecipeTensor {
  std::string_view name;
  std::span<const int64_t> dims;  // dims[0] contiguous, as in GGUF
  GgmlType type;                  // the input's type
};

struct RecipeChoice {
  GgmlType type;   // the output's type
  bool quantised;  // false: the tensor is copied unchanged (type == the input's type)
};

// Error unless the recipes cover `arch` (qwen3, qwen3moe); the message names it.
Status check_recipe_arch(std::string_view arch);

// One choice per tensor, in the order given (the rules themselves walk the tensors in
// llama.cpp's order, so the result does not depend on the input order). kAllF32 keeps every
// tensor F32. Errors name the tensor: an arch the recipes do not cover, a tensor to quantise that
// is not F32/F16/BF16 (already quantised), a row length that is not a multiple of the chosen
// type's block size, a tensor kept as is whose type Popper cannot run there (norms and the router
// must be F32), a blk.N tensor with N outside [0, n_layer).
Result<std::vector<RecipeChoice>> plan_quant_types(QuantFtype ftype, const RecipeModel& model,
                                                   std::span<const RecipeTensor> tensors);

// llama-quantize's output order: tensors outside blk.N first, then by layer number, and by name
// within a layer (llama_model_loader's weight_name_comparer). Strict weak order on names.
bool llama_tensor_order_less(std::string_view a, std::string_view b);

}  // namespace popper
