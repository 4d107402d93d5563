#include "engine/quant/traits.h"

#include "engine/quant/quant_rows.h"

namespace popper {
namespace {

// One row per compute type, in ggml id order. vec_dot_type follows ggml's type_traits_cpu.
constexpr QuantTraits kTraits[] = {
    {GgmlType::F32, quant::dequantize_row_f32, quant::quantize_row_f32, GgmlType::F32},
    {GgmlType::F16, quant::dequantize_row_f16, quant::quantize_row_f16, GgmlType::F32},
    {GgmlType::Q8_0, quant::dequantize_row_q8_0, quant::quantize_row_q8_0_ref, GgmlType::Q8_0},
    {GgmlType::Q4_K, quant::dequantize_row_q4_k, quant::quantize_row_q4_k_ref, GgmlType::Q8_K},
    {GgmlType::Q5_K, quant::dequantize_row_q5_k, quant::quantize_row_q5_k_ref, GgmlType::Q8_K},
    {GgmlType::Q6_K, quant::dequantize_row_q6_k, quant::quantize_row_q6_k_ref, GgmlType::Q8_K},
    {GgmlType::Q8_K, quant::dequantize_row_q8_k, quant::quantize_row_q8_k_ref, GgmlType::Q8_K},
    {GgmlType::BF16, quant::dequantize_row_bf16, quant::quantize_row_bf16, GgmlType::F32},
};

}  // namespace

const QuantTraits* quant_traits(GgmlType type) {
  for (const auto& t : kTraits) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

bool is_compute_type(GgmlType type) { return quant_traits(type) != nullptr; }

}  // namespace popper
