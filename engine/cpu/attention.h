// Causal grouped-query attention over the CPU KV store (kv_store.h).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/thread_pool.h"
#include "engine/cpu/kv_store.h"
#include "engine/cpu/matmul.h"

namespace popper::cpu {

// Shape of one attention call.
struct AttentionShape {
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
  float scale;  // 1 / sqrt(head_dim)
};

// Per-thread scratch of attention(): one item's scores ([group, n_kv] f32) and its query group or
// probabilities as a matmul's activation rows. Sized for `n_threads` threads.
struct AttentionScratch {
  explicit AttentionScratch(int n_threads) : scores(size_t(n_threads)), rows(size_t(n_threads)) {}
  std::vector<std::vector<float>> scores;
  std::vector<QuantizedActivations> rows;
};

// Query token t (position pos0 + t) attends to positions [0, pos0 + t] of layer il; query head h
// reads kv head h / (n_head / n_head_kv). Scores are q·k * scale, softmax, then the
// probability-weighted sum of the values. Shapes the flash kernel takes (head_dim a multiple of 8
// up to kMaxHeadDim, at most kMaxAttentionGroup query heads per kv head: every Qwen3) run it:
// one pass of tiles with an online softmax, its error bound against an exact reference stated in
// falsifiers/flash_attention_test.cpp. Other shapes: scores as a matmul, softmax with the max
// subtracted and the sum in double, values as a second matmul. Positions [0, pos0 + n_tokens) must
// have been stored. q, out: [n_tokens, n_head, head_dim] f32.
void attention(const KvStore& kv, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
               const AttentionShape& s, float* out, AttentionScratch& scratch, ThreadPool& pool);

}  // namespace popper::cpu
