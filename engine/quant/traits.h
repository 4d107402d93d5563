// The quant traits table: for each tensor type Popper computes with, how to dequantise a row,
// how to quantise one (the scalar reference, bit-exact with ggml's *_ref functions), and which
// activation format its dot product consumes. Modelled on ggml's type_traits.
//
// Rows are n elements long; n must be a multiple of the type's block size (callers check).
#pragma once

#include <cstdint>

#include "engine/core/ggml_type.h"

namespace popper {

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct QuantTraits {
  GgmlType type;
  DequantizeRowFn dequantize_row;  // block bytes -> f32
  QuantizeRowFn quantize_row_ref;  // f32 -> block bytes (scalar reference)
  // Activations are converted to this type before a dot product with a weight row:
  // Q8_K for the k-quants, Q8_0 for Q8_0, F32 for F32/F16/BF16 (kept exact).
  GgmlType vec_dot_type;
};

// nullptr when Popper has no kernels for the type (a file may still carry it; the model
// loader reports it by tensor name).
const QuantTraits* quant_traits(GgmlType type);

// Types with kernels: F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K.
bool is_compute_type(GgmlType type);

}  // namespace popper
