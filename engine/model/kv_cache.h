// The KV cache: per layer, one contiguous K block and one contiguous V block, allocated once.
//
// Layout (per layer il):
//   k: [n_head_kv, capacity, head_dim]    head-major: one kv head's keys are a contiguous matrix
//                                          of `capacity` rows, so the scores of a query group are
//                                          one matmul on the engine's kernels.
//   v: [n_head_kv * head_dim, capacity]   transposed (llama.cpp's v_trans): row d holds
//                                          dimension d of every position, so the weighted sum
//                                          over positions is one dot product per output element.
// Storage is f32 or f16 (half the bytes, exact round trip of f16 values). A full cache refuses
// writes (the generator ends with `context_full`), never writes out of bounds. The host storage
// is allocated by the first store(): a device backend keeps the contents in its own memory and
// uses only this class's bookkeeping, so its caches cost no host memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"

namespace popper {

enum class KvType { kF32, kF16 };
Result<KvType> parse_kv_type(const std::string& name);  // "f32" | "f16"
const char* kv_type_name(KvType type);

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, KvType type);

  int64_t capacity() const { return capacity_; }
  int64_t n_layer() const { return n_layer_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t n_head_kv() const { return n_head_kv_; }
  int64_t head_dim() const { return head_dim_; }
  KvType type() const { return type_; }
  GgmlType ggml_type() const { return type_ == KvType::kF32 ? GgmlType::F32 : GgmlType::F16; }
  int64_t elem_bytes() const { return type_ == KvType::kF32 ? 4 : 2; }
  // Bytes of K plus V storage at full capacity (on whichever side holds them).
  uint64_t bytes() const {
    return 2 * uint64_t(n_layer_) * uint64_t(kv_dim_) * uint64_t(capacity_) * uint64_t(elem_bytes());
  }

  // Positions [0, n_pos) hold valid entries for every layer.
  int64_t n_pos() const { return n_pos_; }
  int64_t free_positions() const { return capacity_ - n_pos_; }
  // Marks [0, n) as valid after a forward pass wrote positions [n_pos(), n). n <= capacity.
  void commit(int64_t n);
  // Forgets positions >= n (chat reuse: keep the shared prefix). n <= n_pos().
  void truncate(int64_t n);

  // Error when positions [pos0, pos0 + n_tokens) do not fit the capacity.
  Status check_range(int64_t pos0, int64_t n_tokens) const;
  // Writes k, v ([n_tokens, kv_dim] f32 each, host memory) at positions [pos0, pos0 + n_tokens)
  // of layer il. Error when the range passes capacity.
  Status store(int64_t il, int64_t pos0, int64_t n_tokens, const float* k, const float* v);

  // Raw host storage (after a store()): kv head kvh's keys in layer il ([capacity, head_dim]); v row d of layer il
  // (capacity elements, d = kvh * head_dim + i).
  const uint8_t* k_head(int64_t il, int64_t kvh) const {
    return k_.data() + ((il * n_head_kv_ + kvh) * capacity_ * head_dim_) * elem_bytes();
  }
  const uint8_t* v_row(int64_t il, int64_t d) const { return v_.data() + ((il * kv_dim_ + d) * capacity_) * elem_bytes(); }

 private:
  uint8_t* k_at(int64_t il, int64_t kvh, int64_t p) {
    return const_cast<uint8_t*>(k_head(il, kvh)) + p * head_dim_ * elem_bytes();
  }
  uint8_t* v_row_mut(int64_t il, int64_t d) { return const_cast<uint8_t*>(v_row(il, d)); }

  int64_t n_layer_, n_head_kv_, head_dim_, kv_dim_, capacity_;
  KvType type_;
  int64_t n_pos_ = 0;
  std::vector<uint8_t> k_;  // [n_layer][n_head_kv][capacity][head_dim], empty until the first store
  std::vector<uint8_t> v_;  // [n_layer][kv_dim][capacity]
};

}  // namespace popper
