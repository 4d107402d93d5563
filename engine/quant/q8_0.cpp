// Q8_0: blocks of 32 int8 with one fp16 scale (ggml's quantize_row_q8_0_ref /
// dequantize_row_q8_0). Rounding is roundf: ties away from zero.
#include <algorithm>
#include <cmath>

#include "engine/core/fp16.h"
#include "engine/quant/blocks.h"
#include "engine/quant/quant_rows.h"

namespace popper::quant {

void dequantize_row_q8_0(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) dst[i * kQK8_0 + j] = x[i].qs[j] * d;
  }
}

void quantize_row_q8_0_ref(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    const float* x = src + i * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

}  // namespace popper::quant
