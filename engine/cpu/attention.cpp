#include "engine/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "engine/core/faults.h"
#include "engine/cpu/flash_attention.h"
#include "engine/cpu/parallel.h"

namespace popper::cpu {

namespace {

// The flash-style kernel's limits (flash_attention.h); other shapes take the two-matmul path.
bool flash_applies(const AttentionShape& s) {
  return s.head_dim % 8 == 0 && s.head_dim <= kMaxHeadDim && s.n_head / s.n_head_kv <= kMaxAttentionGroup;
}

}  // namespace

void attention(const KvStore& kv, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
               const AttentionShape& s, float* out, AttentionScratch& scratch, ThreadPool& pool) {
  const int64_t group = s.n_head / s.n_head_kv;
  const GgmlType kv_type = kv.type();
  const int64_t capacity = kv.capacity();
  // Token t attends to positions [0, pos0 + t] (causal).
  // The fault recomputes a decode step's attention once per kQuadraticStride cached positions.
  constexpr int64_t kQuadraticStride = 256;
  const bool quadratic = n_tokens == 1 && fault_on(Fault::kAttentionQuadratic);
  const int64_t n_items = n_tokens * s.n_head_kv;
  const int64_t work = n_tokens * (pos0 + n_tokens) * s.n_head * s.head_dim * kv.elem_bytes();
  if (flash_applies(s)) {
    // One work item per (token, kv head): the group's query heads share one pass of tiles over
    // the keys and values (flash_attention.h), cost linear in the depth.
    for_items(pool, work >= kParallelMinWork, n_items, [&](int64_t begin, int64_t end, int) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t t = item / s.n_head_kv;
        const int64_t kvh = item % s.n_head_kv;
        const int64_t n_kv = pos0 + t + 1;
        const int64_t at = (t * s.n_head + kvh * group) * s.head_dim;  // [group, head_dim]
        const KvHeadView head{kv_type, kv.k_head(il, kvh), kv.v_row(il, kvh * s.head_dim), capacity,
                              s.head_dim};
        const int64_t passes = quadratic ? 1 + n_kv / kQuadraticStride : 1;
        for (int64_t pass = 0; pass < passes; ++pass)
          attention_head_group(q + at, group, head, n_kv, s.scale, out + at);
      }
    });
    return;
  }
  // One work item per (token, kv head): the group's query heads share the keys, so their scores
  // are one small matmul against the contiguous [positions, head_dim] key block.
  for_items(pool, work >= kParallelMinWork, n_items, [&](int64_t begin, int64_t end, int tid) {
    std::vector<float>& scores = scratch.scores[size_t(tid)];
    QuantizedActivations& qa = scratch.rows[size_t(tid)];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / s.n_head_kv;
      const int64_t kvh = item % s.n_head_kv;
      const int64_t n_kv = pos0 + t + 1;  // causal: positions [0, pos0 + t]
      scores.resize(size_t(group * n_kv));
      const float* qg = q + (t * s.n_head + kvh * group) * s.head_dim;  // [group, head_dim]
      qa.quantize(qg, group, s.head_dim, s.head_dim, GgmlType::F32);
      const WeightMatrix keys = WeightMatrix::make(kv_type, kv.k_head(il, kvh), s.head_dim, capacity);
      matmul_rows(keys, qa, scores.data(), n_kv, 0, n_kv);  // scores[g, j] = q_g . k_j
      for (int64_t g = 0; g < group; ++g) {
        float* sc = scores.data() + g * n_kv;
        float max = -INFINITY;
        for (int64_t j = 0; j < n_kv; ++j) {
          sc[j] *= s.scale;
          max = std::max(max, sc[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n_kv; ++j) {
          sc[j] = std::exp(sc[j] - max);
          sum += sc[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < n_kv; ++j) sc[j] *= inv;
      }
      // out[g, i] = sum_j p[g, j] v_j[i]: the transposed V block of this kv head is a matrix of
      // head_dim rows over the first n_kv positions (row stride: the capacity), so the whole
      // group reads each V row once.
      WeightMatrix values;
      values.type = kv_type;
      values.data = kv.v_row(il, kvh * s.head_dim);
      values.n_in = n_kv;
      values.n_out = s.head_dim;
      values.row_bytes = capacity * kv.elem_bytes();
      qa.quantize(scores.data(), group, n_kv, n_kv, GgmlType::F32);
      matmul_rows(values, qa, out + (t * s.n_head + kvh * group) * s.head_dim, s.head_dim, 0, s.head_dim);
    }
  });
}

}  // namespace popper::cpu
