// The objects that own the CUDA backend's device state, each freeing what it holds: a weight's
// device copy (owned by the model's PreparedWeights), a sequence's KV cache and a session's
// recorded decode step (owned by the Session). Nothing is looked up by a host address: the
// backend reaches each through the handle its owner passes to the op (device_matrix(),
// kv_cache_as<DeviceKvCache>(), the Step's record).
#pragma once

#include <cstdint>

#include "engine/cuda/cuda_ops.h"
#include "engine/model/backend.h"

namespace popper {

// The process's GPU (device 0), where every CudaBackend keeps its weights and caches.
inline constexpr BackendDevice kCudaDevice{"cuda:0"};

// One weight tensor on the device, in the file's layout (the kernels read ggml blocks as stored).
class DeviceWeight final : public BackendWeight {
 public:
  // Takes `bytes` (a device allocation holding all of file's rows) and frees it.
  DeviceWeight(const WeightMatrix& file, int64_t n_expert, void* bytes)
      : BackendWeight(kCudaDevice, file.type, file.n_in, file.n_out / n_expert, n_expert),
        matrix_{file.type, bytes, file.n_in, file.n_out, file.row_bytes} {}
  ~DeviceWeight() override;
  bool views_file() const override { return false; }
  // Every row (n_out * n_expert of them) as the kernels take it.
  const cuda::DeviceMatrix& matrix() const { return matrix_; }

 private:
  cuda::DeviceMatrix matrix_;
};

// Checked: aborts on a handle of another device.
inline const cuda::DeviceMatrix& device_matrix(const BackendWeight& w) {
  return backend_weight_as<DeviceWeight>(w, kCudaDevice).matrix();
}
// A norm's [n] f32 values on the device.
inline const float* device_norm(const BackendWeight& w) {
  return static_cast<const float*>(device_matrix(w).data);
}

// A sequence's KV cache on the device: K and V, [n_layer][n_head_kv][capacity][head_dim] each, f32
// or f16 as the shape's type. The bookkeeping is the KvCache base's.
class DeviceKvCache final : public KvCache {
 public:
  // Takes k and v (device allocations of bytes() / 2 each) and frees them.
  DeviceKvCache(const KvCacheShape& shape, void* k, void* v) : KvCache(shape, kCudaDevice), k_(k), v_(v) {}
  ~DeviceKvCache() override;
  // Layer il's K and V as the attention kernels take them.
  cuda::DeviceKv layer(int64_t il) const;

 private:
  void* k_;
  void* v_;
};

// A Session's recorded decode step: one CUDA graph of a single-token step (Backend::run_step).
struct DeviceStepRecord final : Backend::StepRecord {
  ~DeviceStepRecord() override;
  void* graph = nullptr;    // null until captured
  uint64_t generation = 0;  // the backend's scratch generation it was captured at
  int eager_runs = 0;
  bool failed = false;  // a capture failed once: run eagerly from then on
};

}  // namespace popper
