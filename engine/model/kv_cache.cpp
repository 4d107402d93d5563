#include "engine/model/kv_cache.h"

#include <cstring>

#include "engine/core/fp16.h"

namespace popper {

Result<KvType> parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  return make_error("--kv-type: want f32 or f16, got '", name, "'");
}

const char* kv_type_name(KvType type) { return type == KvType::kF32 ? "f32" : "f16"; }

KvCache::KvCache(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, KvType type)
    : n_layer_(n_layer),
      n_head_kv_(n_head_kv),
      head_dim_(head_dim),
      kv_dim_(n_head_kv * head_dim),
      capacity_(capacity),
      type_(type) {
  POPPER_CHECK(n_layer > 0 && n_head_kv > 0 && head_dim > 0 && capacity > 0, "bad KV cache shape");
}

void KvCache::commit(int64_t n) {
  POPPER_CHECK(n >= n_pos_ && n <= capacity_, "commit ", n, " with n_pos ", n_pos_, " capacity ", capacity_);
  n_pos_ = n;
}

void KvCache::truncate(int64_t n) {
  POPPER_CHECK(n >= 0 && n <= n_pos_, "truncate to ", n, " with n_pos ", n_pos_);
  n_pos_ = n;
}

Status KvCache::check_range(int64_t pos0, int64_t n_tokens) const {
  if (pos0 < 0 || n_tokens < 0 || pos0 + n_tokens > capacity_) {
    return make_error("KV cache: positions [", pos0, ", ", pos0 + n_tokens, ") pass its capacity ", capacity_);
  }
  return Status::success();
}

Status KvCache::store(int64_t il, int64_t pos0, int64_t n_tokens, const float* k, const float* v) {
  POPPER_RETURN_IF_ERROR(check_range(pos0, n_tokens));
  POPPER_CHECK(il >= 0 && il < n_layer_, "layer ", il);
  if (k_.empty()) {
    const size_t n = size_t(n_layer_) * size_t(kv_dim_) * size_t(capacity_) * size_t(elem_bytes());
    k_.assign(n, 0);
    v_.assign(n, 0);
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t p = pos0 + t;
    const float* kt = k + t * kv_dim_;
    const float* vt = v + t * kv_dim_;
    for (int64_t h = 0; h < n_head_kv_; ++h) {
      uint8_t* kd = k_at(il, h, p);
      const float* ks = kt + h * head_dim_;
      if (type_ == KvType::kF32) {
        std::memcpy(kd, ks, head_dim_ * 4);
      } else {
        for (int64_t i = 0; i < head_dim_; ++i) reinterpret_cast<uint16_t*>(kd)[i] = f32_to_fp16(ks[i]);
      }
    }
    for (int64_t d = 0; d < kv_dim_; ++d) {
      if (type_ == KvType::kF32) {
        reinterpret_cast<float*>(v_row_mut(il, d))[p] = vt[d];
      } else {
        reinterpret_cast<uint16_t*>(v_row_mut(il, d))[p] = f32_to_fp16(vt[d]);
      }
    }
  }
  return Status::success();
}

}  // namespace popper
