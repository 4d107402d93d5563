// The CPU backend's KV cache storage: per layer, one K block and one V block in host memory, in
// the layout the CPU attention reads. The bookkeeping (valid positions, commit, truncate) is the
// model's KvCache; this is only where the entries live.
//
// Layout (per layer il):
//   k: [n_head_kv, capacity, head_dim]    head-major: one kv head's keys are a contiguous matrix
//                                          of `capacity` rows, so the scores of a query group are
//                                          one matmul on the engine's kernels.
//   v: [n_head_kv * head_dim, capacity]   transposed (llama.cpp's v_trans): row d holds
//                                          dimension d of every position, so the weighted sum
//                                          over positions is one dot product per output element.
// Elements are f32 or f16 (half the bytes, exact round trip of f16 values). The storage is
// allocated (zeroed) by the first store(), so a cache that is never written costs no memory.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/ggml_type.h"

namespace popper::cpu {

class KvStore {
 public:
  // type: F32 or F16.
  KvStore(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, GgmlType type);

  GgmlType type() const { return type_; }
  int64_t elem_bytes() const { return type_ == GgmlType::F32 ? 4 : 2; }
  int64_t capacity() const { return capacity_; }

  // Writes k, v ([n_tokens, n_head_kv * head_dim] f32 each) at positions [pos0, pos0 + n_tokens)
  // of layer il. The caller checks the range against the capacity (a bug otherwise: aborts).
  void store(int64_t il, int64_t pos0, int64_t n_tokens, const float* k, const float* v);

  // After a store(): kv head kvh's keys in layer il ([capacity, head_dim]); row d of layer il's
  // values (capacity elements, d = kvh * head_dim + i).
  const uint8_t* k_head(int64_t il, int64_t kvh) const {
    return k_.data() + ((il * n_head_kv_ + kvh) * capacity_ * head_dim_) * elem_bytes();
  }
  const uint8_t* v_row(int64_t il, int64_t d) const {
    return v_.data() + ((il * kv_dim_ + d) * capacity_) * elem_bytes();
  }

 private:
  uint8_t* k_at(int64_t il, int64_t kvh, int64_t p) {
    return const_cast<uint8_t*>(k_head(il, kvh)) + p * head_dim_ * elem_bytes();
  }
  uint8_t* v_row_mut(int64_t il, int64_t d) { return const_cast<uint8_t*>(v_row(il, d)); }

  int64_t n_layer_, n_head_kv_, head_dim_, kv_dim_, capacity_;
  GgmlType type_;
  std::vector<uint8_t> k_;  // [n_layer][n_head_kv][capacity][head_dim], empty until the first store
  std::vector<uint8_t> v_;  // [n_layer][kv_dim][capacity]
};

}  // namespace popper::cpu
