// A sequence's KV cache: its shape and bookkeeping (which positions hold valid entries) here, its
// storage in a backend's memory and layout. A backend makes its own caches
// (Backend::make_kv_cache returns a subclass holding the storage: host memory for the CPU, device
// memory for CUDA), so the layout is the backend's decision and the storage is freed with the
// cache, by its owner (a Session).
//
// A backend's subclass is reached through kv_cache_as, which aborts on another device's cache.
// The bookkeeping is the caller's: a forward pass writes positions [n_pos(), n) through
// Backend::store_kv and then commit()s them. A full cache refuses writes (the generator ends with
// `context_full`), never writes out of bounds.
#pragma once

#include <cstdint>
#include <string>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"
#include "engine/model/backend_device.h"

namespace popper {

enum class KvType { kF32, kF16 };
Result<KvType> parse_kv_type(const std::string& name);  // "f32" | "f16"
const char* kv_type_name(KvType type);
inline GgmlType kv_ggml_type(KvType type) { return type == KvType::kF32 ? GgmlType::F32 : GgmlType::F16; }

// Every layer holds n_head_kv * head_dim keys and values per position, f32 or f16.
struct KvCacheShape {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t capacity = 0;  // positions
  KvType type = KvType::kF32;
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // The device whose backend made it (and holds its entries).
  const BackendDevice& device() const { return *device_; }
  const KvCacheShape& shape() const { return shape_; }
  int64_t capacity() const { return shape_.capacity; }
  int64_t n_layer() const { return shape_.n_layer; }
  int64_t kv_dim() const { return shape_.n_head_kv * shape_.head_dim; }
  int64_t n_head_kv() const { return shape_.n_head_kv; }
  int64_t head_dim() const { return shape_.head_dim; }
  KvType type() const { return shape_.type; }
  GgmlType ggml_type() const { return kv_ggml_type(shape_.type); }
  int64_t elem_bytes() const { return shape_.type == KvType::kF32 ? 4 : 2; }
  // Bytes of K plus V storage at full capacity (on whichever side holds them).
  uint64_t bytes() const {
    return 2 * uint64_t(n_layer()) * uint64_t(kv_dim()) * uint64_t(capacity()) * uint64_t(elem_bytes());
  }

  // Positions [0, n_pos) hold valid entries for every layer.
  int64_t n_pos() const { return n_pos_; }
  int64_t free_positions() const { return capacity() - n_pos_; }
  // Marks [0, n) as valid after a forward pass wrote positions [n_pos(), n). n <= capacity.
  void commit(int64_t n);
  // Forgets positions >= n (chat reuse: keep the shared prefix). n <= n_pos().
  void truncate(int64_t n);

  // Error when positions [pos0, pos0 + n_tokens) do not fit the capacity.
  Status check_range(int64_t pos0, int64_t n_tokens) const;

 protected:
  // Aborts on a shape with a zero or negative dimension (a bug: the model's config is checked).
  KvCache(const KvCacheShape& shape, const BackendDevice& device);

 private:
  KvCacheShape shape_;
  const BackendDevice* device_;
  int64_t n_pos_ = 0;
};

// The backend subclass behind a cache, checked: aborts when `cache` was made for another device.
template <class T>
T& kv_cache_as(KvCache& cache, const BackendDevice& device) {
  POPPER_CHECK(&cache.device() == &device, "a KV cache made for ", cache.device().name, " handed to the ",
               device.name, " backend");
  return static_cast<T&>(cache);
}
template <class T>
const T& kv_cache_as(const KvCache& cache, const BackendDevice& device) {
  return kv_cache_as<T>(const_cast<KvCache&>(cache), device);
}

}  // namespace popper
