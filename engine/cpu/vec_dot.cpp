#include "engine/cpu/vec_dot.h"

#include <string>

#include "engine/core/cpu_features.h"
#include "engine/cpu/kernels.h"
#include "engine/quant/traits.h"

namespace popper::cpu {
namespace {

struct KernelRow {
  GgmlType type;
  VecDotFn scalar;
  VecDotFn avx2;
};

constexpr KernelRow kKernels[] = {
    {GgmlType::F32, scalar::vec_dot_f32, avx2::vec_dot_f32},
    {GgmlType::F16, scalar::vec_dot_f16, avx2::vec_dot_f16},
    {GgmlType::BF16, scalar::vec_dot_bf16, avx2::vec_dot_bf16},
    {GgmlType::Q8_0, scalar::vec_dot_q8_0, avx2::vec_dot_q8_0},
    {GgmlType::Q4_K, scalar::vec_dot_q4_k, avx2::vec_dot_q4_k},
    {GgmlType::Q5_K, scalar::vec_dot_q5_k, avx2::vec_dot_q5_k},
    {GgmlType::Q6_K, scalar::vec_dot_q6_k, avx2::vec_dot_q6_k},
};

bool path_available(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return true;
    case SimdPath::kAvx2:
      return cpu_features().has_avx2_fma();
    case SimdPath::kAvx512:
      return cpu_features().has_avx512_vnni() && cpu_features().has_avx2_fma();
  }
  return false;
}

}  // namespace

SimdPath active_simd_path() {
  // simd_level() already applies POPPER_SIMD.
  static const SimdPath path = [] {
    const std::string level = simd_level();
    return level == "avx512" ? SimdPath::kAvx512 : level == "avx2" ? SimdPath::kAvx2 : SimdPath::kScalar;
  }();
  return path;
}

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return "scalar";
    case SimdPath::kAvx2:
      return "avx2";
    case SimdPath::kAvx512:
      return "avx512";
  }
  return "unknown";
}

VecDotFn vec_dot_fn(GgmlType weight_type, SimdPath path) {
  if (!path_available(path)) return nullptr;
  for (const auto& k : kKernels) {
    // The AVX-512 path's own kernels are the packed-layout ones (packed_matmul.h); on the file's
    // layout it runs the AVX2 dots.
    if (k.type == weight_type) return path == SimdPath::kScalar ? k.scalar : k.avx2;
  }
  return nullptr;
}

VecDotMultiFn vec_dot_multi_fn(GgmlType weight_type, SimdPath path) {
  if (path == SimdPath::kScalar || !path_available(path)) return nullptr;
  if (weight_type == GgmlType::Q4_K) return avx2::vec_dot_q4_k_x4;
  if (weight_type == GgmlType::Q6_K) return avx2::vec_dot_q6_k_x4;
  return nullptr;
}

ActivationQuantizeFn activation_quantize_fn(GgmlType vec_dot_type, SimdPath path) {
  if (!path_available(path)) return nullptr;
  if (vec_dot_type != GgmlType::F32 && vec_dot_type != GgmlType::Q8_0 && vec_dot_type != GgmlType::Q8_K)
    return nullptr;
  if (path != SimdPath::kScalar && vec_dot_type == GgmlType::Q8_K) return avx2::quantize_row_q8_k;
  if (path != SimdPath::kScalar && vec_dot_type == GgmlType::Q8_0) return avx2::quantize_row_q8_0;
  return quant_traits(vec_dot_type)->quantize_row_ref;
}

}  // namespace popper::cpu
