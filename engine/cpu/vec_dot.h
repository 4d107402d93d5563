// Dot products of one weight row with one activation row, per weight type and SIMD path.
//
// The activation row must already be in the weight type's vec_dot_type (quant/traits.h):
// Q8_K for Q4_K/Q5_K/Q6_K, Q8_0 for Q8_0, F32 for F32/F16/BF16. The integer parts of the
// quantised products are exact on every path; only the final float accumulation order differs
// between scalar and SIMD (bound stated in falsifiers/vec_dot_test.cpp).
#pragma once

#include <cstdint>

#include "engine/core/ggml_type.h"

namespace popper::cpu {

enum class SimdPath { kScalar, kAvx2, kAvx512 };

// n: elements in the row (multiple of the type's block size). w: weight row bytes.
// a: activation row in vec_dot_type. Returns the dot product.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

// The best path this CPU supports, capped by POPPER_SIMD (engine/core/cpu_features.h).
SimdPath active_simd_path();
const char* simd_path_name(SimdPath path);

// nullptr when the type has no kernel or the path is not available on this CPU.
VecDotFn vec_dot_fn(GgmlType weight_type, SimdPath path);
inline VecDotFn vec_dot_fn(GgmlType weight_type) { return vec_dot_fn(weight_type, active_simd_path()); }

// One weight row against kVecDotTokens activation rows, each weight block unpacked once (the
// prefill path). out[t] is bit-identical to vec_dot_fn(type, path)(n, w, a[t]). nullptr where
// a type/path has no such kernel: callers then loop over the single-row dot.
inline constexpr int kVecDotTokens = 4;
using VecDotMultiFn = void (*)(int64_t n, const void* w, const void* const* a, float* out);
VecDotMultiFn vec_dot_multi_fn(GgmlType weight_type, SimdPath path);
inline VecDotMultiFn vec_dot_multi_fn(GgmlType weight_type) {
  return vec_dot_multi_fn(weight_type, active_simd_path());
}

// Converts n f32 activations (a multiple of the block size) to `vec_dot_type` (F32, Q8_0 or
// Q8_K). Every path writes the same bytes as the scalar reference quantiser
// (quant_traits(type)->quantize_row_ref). nullptr for other types or an unavailable path.
using ActivationQuantizeFn = void (*)(const float* src, void* dst, int64_t n);
ActivationQuantizeFn activation_quantize_fn(GgmlType vec_dot_type, SimdPath path);
inline ActivationQuantizeFn activation_quantize_fn(GgmlType vec_dot_type) {
  return activation_quantize_fn(vec_dot_type, active_simd_path());
}

}  // namespace popper::cpu
