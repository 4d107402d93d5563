#include "engine/model/kv_cache.h"

namespace popper {

Result<KvType> parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  return make_error("--kv-type: want f32 or f16, got '", name, "'");
}

const char* kv_type_name(KvType type) { return type == KvType::kF32 ? "f32" : "f16"; }

KvCache::KvCache(const KvCacheShape& shape, const BackendDevice& device) : shape_(shape), device_(&device) {
  POPPER_CHECK(shape.n_layer > 0 && shape.n_head_kv > 0 && shape.head_dim > 0 && shape.capacity > 0,
               "bad KV cache shape");
}

void KvCache::commit(int64_t n) {
  POPPER_CHECK(n >= n_pos_ && n <= capacity(), "commit ", n, " with n_pos ", n_pos_, " capacity ",
               capacity());
  n_pos_ = n;
}

void KvCache::truncate(int64_t n) {
  POPPER_CHECK(n >= 0 && n <= n_pos_, "truncate to ", n, " with n_pos ", n_pos_);
  n_pos_ = n;
}

Status KvCache::check_range(int64_t pos0, int64_t n_tokens) const {
  if (pos0 < 0 || n_tokens < 0 || pos0 + n_tokens > capacity()) {
    return make_error("KV cache: positions [", pos0, ", ", pos0 + n_tokens, ") pass its capacity ",
                      capacity());
  }
  return Status::success();
}

}  // namespace popper
