// Attention of a group of query heads over one kv head of the KV cache, in one pass of tiles
// over the cached positions with a running max and sum (flash attention's online softmax): no
// score row of n_kv floats, no second pass, cost linear in n_kv, the keys and values read once
// per group. The scores and the exponentials are vectorised (AVX2), so a decode step at depth
// 4096 spends its time streaming the cache, not in std::exp.
#pragma once

#include <cstdint>

#include "engine/core/ggml_type.h"
#include "engine/cpu/vec_dot.h"

namespace popper::cpu {

// One kv head of one layer, in the KvCache layout (engine/model/kv_cache.h).
struct KvHeadView {
  GgmlType type = GgmlType::F16;  // F16 or F32
  const uint8_t* k = nullptr;     // [capacity, head_dim]
  const uint8_t* v_t = nullptr;   // [head_dim, capacity]: row d holds dimension d of every position
  int64_t capacity = 0;
  int64_t head_dim = 0;  // a multiple of 8, at most kMaxHeadDim
};

inline constexpr int64_t kMaxHeadDim = 256;
inline constexpr int64_t kMaxAttentionGroup = 16;  // query heads per kv head

// out[g, :] = sum_j softmax_j(scale * q[g, :] . k_j) v_j over positions j in [0, n_kv), for the
// n_q query heads of the group. q, out: [n_q, head_dim] f32, n_q <= kMaxAttentionGroup, n_kv >= 1.
// Paths differ only in float rounding (the exponential's polynomial, summation order); the bound
// against an exact reference is stated in falsifiers/flash_attention_test.cpp.
void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                          float* out, SimdPath path);
inline void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                                 float* out) {
  attention_head_group(q, n_q, kv, n_kv, scale, out, active_simd_path());
}

}  // namespace popper::cpu
