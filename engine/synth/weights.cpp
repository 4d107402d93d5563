#include "engine/synth/weights.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/core/rng.h"
#include "engine/quant/blocks.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

// Integer square root by Newton's method on doubles is exact for our use, but the spreads
// below only need sqrt, which IEEE makes exact-rounded everywhere.
float inv_sqrt(int64_t n) { return 1.0f / static_cast<float>(__builtin_sqrt(static_cast<double>(n))); }

Rng row_rng(uint64_t seed, const PlannedTensor& t, int64_t row) {
  return Rng::stream(seed ^ fnv1a64(t.name.data(), t.name.size()), static_cast<uint64_t>(row) + 1);
}

void draw_row(Rng& rng, const PlannedTensor& t, float stddev, float* row, int64_t n) {
  if (t.role == TensorRole::kNorm) {
    for (int64_t i = 0; i < n; ++i) row[i] = 1.0f + 0.1f * rng.normal();
  } else {
    for (int64_t i = 0; i < n; ++i) row[i] = stddev * rng.normal();
  }
}

// Q4_K: x = d * sc * q - dmin * m with q uniform in [0, 15] (mean 7.5, std 4.61). Scales are
// drawn in [40, 56]; dmin = 8 d and m = round(7.5 sc / 8) cancel the mean so values centre on 0.
void random_q4k_block(Rng& rng, float stddev, BlockQ4K& b) {
  const float d = stddev / (4.61f * 48.0f);
  b.d = f32_to_fp16(d);
  b.dmin = f32_to_fp16(8.0f * d);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(40 + rng.below(17));
    m[j] = static_cast<uint8_t>((sc[j] * 15 + 8) / 16);  // round(7.5 * sc / 8)
  }
  // Pack 8 6-bit scales and mins the way get_scale_min_k4 unpacks them.
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
  for (int i = 0; i < kQK_K / 2; i += 8) {
    uint64_t bits = rng.next();
    std::memcpy(b.qs + i, &bits, 8);
  }
}

// Q6_K: x = d * sc * (q - 32) with q uniform in [0, 63] (std of q - 32 is 18.5); sc in [8, 16].
void random_q6k_block(Rng& rng, float stddev, BlockQ6K& b) {
  b.d = f32_to_fp16(stddev / (18.5f * 12.0f));
  for (int i = 0; i < kQK_K / 16; ++i) b.scales[i] = static_cast<int8_t>(8 + rng.below(9));
  for (int i = 0; i < kQK_K / 2; i += 8) {
    uint64_t bits = rng.next();
    std::memcpy(b.ql + i, &bits, 8);
  }
  for (int i = 0; i < kQK_K / 4; i += 8) {
    uint64_t bits = rng.next();
    std::memcpy(b.qh + i, &bits, 8);
  }
}

}  // namespace

float synth_weight_std(const PlannedTensor& t) {
  switch (t.role) {
    case TensorRole::kEmbedding: return 1.0f;
    case TensorRole::kProjection: return inv_sqrt(t.fan_in);
    case TensorRole::kNorm: return 0.1f;
    case TensorRole::kRouter: return 2.0f * inv_sqrt(t.fan_in);
    case TensorRole::kOutput: return 2.0f * inv_sqrt(t.fan_in);
  }
  return 1.0f;
}

Status fill_synth_tensor(const PlannedTensor& t, uint64_t seed, bool direct_blocks, std::span<uint8_t> out) {
  const int64_t n_per_row = t.dims[0];
  int64_t n_rows = 1;
  for (size_t i = 1; i < t.dims.size(); ++i) n_rows *= t.dims[i];
  const int64_t row_bytes = ggml_row_size(t.type, n_per_row);
  if (static_cast<int64_t>(out.size()) != row_bytes * n_rows)
    return make_error("synth: tensor ", t.name, ": buffer of ", out.size(), " bytes, expected ", row_bytes * n_rows);
  const float stddev = synth_weight_std(t);

  if (direct_blocks && (t.type == GgmlType::Q4_K || t.type == GgmlType::Q6_K)) {
    const int64_t blocks_per_row = n_per_row / kQK_K;
    for (int64_t r = 0; r < n_rows; ++r) {
      Rng rng = row_rng(seed, t, r);
      uint8_t* row = out.data() + r * row_bytes;
      for (int64_t b = 0; b < blocks_per_row; ++b) {
        if (t.type == GgmlType::Q4_K) {
          BlockQ4K block;
          random_q4k_block(rng, stddev, block);
          std::memcpy(row + b * sizeof(BlockQ4K), &block, sizeof(block));
        } else {
          BlockQ6K block;
          random_q6k_block(rng, stddev, block);
          std::memcpy(row + b * sizeof(BlockQ6K), &block, sizeof(block));
        }
      }
    }
    return Status::success();
  }

  std::vector<float> row(static_cast<size_t>(n_per_row));
  if (t.type == GgmlType::F32) {
    for (int64_t r = 0; r < n_rows; ++r) {
      Rng rng = row_rng(seed, t, r);
      draw_row(rng, t, stddev, row.data(), n_per_row);
      std::memcpy(out.data() + r * row_bytes, row.data(), static_cast<size_t>(row_bytes));
    }
    return Status::success();
  }
  const QuantTraits* traits = quant_traits(t.type);
  if (traits == nullptr || traits->quantize_row_ref == nullptr)
    return make_error("synth: tensor ", t.name, ": no reference quantiser for type ", ggml_type_name(t.type));
  for (int64_t r = 0; r < n_rows; ++r) {
    Rng rng = row_rng(seed, t, r);
    draw_row(rng, t, stddev, row.data(), n_per_row);
    traits->quantize_row_ref(row.data(), out.data() + r * row_bytes, n_per_row);
  }
  return Status::success();
}

}  // namespace popper
