// Shared by the kernel falsifiers (vec_dot_test, packed_matmul_test): random weight rows with
// sane scales and activation rows quantised by the scalar reference.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/core/rng.h"
#include "engine/quant/blocks.h"
#include "engine/quant/traits.h"

namespace popper::testing {

inline int64_t block_size(GgmlType t) { return ggml_type_info(t).block_size; }

// Random bytes for a weight row, with the fp16 scales overwritten by sane values (random bits
// would include NaN and inf).
inline std::vector<uint8_t> random_weight_row(GgmlType type, int64_t n, Rng& rng) {
  std::vector<uint8_t> bytes(static_cast<size_t>(ggml_row_size(type, n)));
  for (auto& b : bytes) b = static_cast<uint8_t>(rng.next());
  const int64_t nb = n / block_size(type);
  auto scale = [&] { return f32_to_fp16(rng.uniform(0.001f, 0.05f)); };
  switch (type) {
    case GgmlType::F32: {
      auto* f = reinterpret_cast<float*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) f[i] = rng.normal();
      break;
    }
    case GgmlType::F16: {
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(rng.normal());
      break;
    }
    case GgmlType::BF16: {
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(rng.normal());
      break;
    }
    case GgmlType::Q8_0:
      for (int64_t i = 0; i < nb; ++i) reinterpret_cast<BlockQ8_0*>(bytes.data())[i].d = scale();
      break;
    case GgmlType::Q4_K:
      for (int64_t i = 0; i < nb; ++i) {
        auto& b = reinterpret_cast<BlockQ4K*>(bytes.data())[i];
        b.d = scale();
        b.dmin = scale();
      }
      break;
    case GgmlType::Q5_K:
      for (int64_t i = 0; i < nb; ++i) {
        auto& b = reinterpret_cast<BlockQ5K*>(bytes.data())[i];
        b.d = scale();
        b.dmin = scale();
      }
      break;
    case GgmlType::Q6_K:
      for (int64_t i = 0; i < nb; ++i) reinterpret_cast<BlockQ6K*>(bytes.data())[i].d = scale();
      break;
    default:
      ADD_FAILURE() << "no generator for " << ggml_type_name(type);
  }
  return bytes;
}

inline std::vector<float> gaussian(int64_t n, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = rng.normal();
  return x;
}

// Activation row in the weight type's vec_dot_type, quantised by the scalar reference.
inline std::vector<uint8_t> activation_row(GgmlType weight_type, const std::vector<float>& x) {
  const GgmlType vt = quant_traits(weight_type)->vec_dot_type;
  std::vector<uint8_t> a(static_cast<size_t>(ggml_row_size(vt, static_cast<int64_t>(x.size()))));
  quant_traits(vt)->quantize_row_ref(x.data(), a.data(), static_cast<int64_t>(x.size()));
  return a;
}

}  // namespace popper::testing
