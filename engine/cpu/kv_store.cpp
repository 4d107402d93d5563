#include "engine/cpu/kv_store.h"

#include <cstring>

#include "engine/core/fp16.h"
#include "engine/core/result.h"

namespace popper::cpu {

KvStore::KvStore(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, GgmlType type)
    : n_layer_(n_layer),
      n_head_kv_(n_head_kv),
      head_dim_(head_dim),
      kv_dim_(n_head_kv * head_dim),
      capacity_(capacity),
      type_(type) {
  POPPER_CHECK(n_layer > 0 && n_head_kv > 0 && head_dim > 0 && capacity > 0, "bad KV cache shape");
  POPPER_CHECK(type == GgmlType::F32 || type == GgmlType::F16, "KV cache type ", ggml_type_name(type));
}

void KvStore::store(int64_t il, int64_t pos0, int64_t n_tokens, const float* k, const float* v) {
  POPPER_CHECK(il >= 0 && il < n_layer_, "layer ", il);
  POPPER_CHECK(pos0 >= 0 && n_tokens >= 0 && pos0 + n_tokens <= capacity_, "positions [", pos0, ", ",
               pos0 + n_tokens, ") of a KV store of ", capacity_);
  if (k_.empty()) {
    const size_t n = size_t(n_layer_) * size_t(kv_dim_) * size_t(capacity_) * size_t(elem_bytes());
    k_.assign(n, 0);
    v_.assign(n, 0);
  }
  const bool f32 = type_ == GgmlType::F32;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t p = pos0 + t;
    const float* kt = k + t * kv_dim_;
    const float* vt = v + t * kv_dim_;
    for (int64_t h = 0; h < n_head_kv_; ++h) {
      uint8_t* kd = k_at(il, h, p);
      const float* ks = kt + h * head_dim_;
      if (f32) {
        std::memcpy(kd, ks, head_dim_ * 4);
      } else {
        for (int64_t i = 0; i < head_dim_; ++i) reinterpret_cast<uint16_t*>(kd)[i] = f32_to_fp16(ks[i]);
      }
    }
    for (int64_t d = 0; d < kv_dim_; ++d) {
      if (f32) {
        reinterpret_cast<float*>(v_row_mut(il, d))[p] = vt[d];
      } else {
        reinterpret_cast<uint16_t*>(v_row_mut(il, d))[p] = f32_to_fp16(vt[d]);
      }
    }
  }
}

}  // namespace popper::cpu
