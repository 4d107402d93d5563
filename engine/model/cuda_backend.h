// The CUDA backend: the Backend ops on engine/cuda's kernels (the only layer that includes CUDA
// headers). Compiled only with POPPER_HAVE_CUDA; make_backend (backend_factory.h) is the way in.
//
// Weights are uploaded once (upload_weights, or on first use) and stay on the device, known by
// their host address: the bytes behind a WeightMatrix / NormWeight must not change or be freed
// while this backend lives (true of a mapped GGUF file; use a fresh backend otherwise). The KV
// cache of each KvCache lives on the device too ([n_layer][n_head_kv][capacity][head_dim] for K
// and for V, f32 or f16 as the cache's type) and the host cache is written as well, so its
// bookkeeping and contents stay what the CPU backend would leave. Activations cross the seam as
// host arrays (backend.h), so every op copies its inputs up and its outputs back: correct, and
// what the per-op parity falsifiers compare, but a decode step pays those copies.
// TODO(cuda-resident): a device-buffer seam in Session to drop the per-op copies and capture
// the decode step in a CUDA graph.
#pragma once

#ifdef POPPER_HAVE_CUDA

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/cuda_ops.h"
#include "engine/model/backend.h"

namespace popper {

class CudaBackend final : public Backend {
 public:
  // Error when no device is usable (the runtime's reason).
  static Result<std::unique_ptr<CudaBackend>> create();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // Uploads every tensor of `weights` now. Error when they do not fit: bytes needed vs free.
  Status upload_weights(const ModelWeights& weights);
  const cuda::DeviceInfo& device() const { return info_; }

  const char* name() const override { return "cuda"; }
  int n_threads() const override { return 1; }

  void embed(const WeightMatrix& table, const int32_t* tokens, int64_t n_tokens, float* x) override;
  void rmsnorm(const float* x, const NormWeight& w, int64_t n_rows, float eps, float* y) override;
  void project(std::span<const Projection> outs, const float* x, int64_t n_tokens) override;
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) override;
  Status store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                  const float* v) override;
  void attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                 const AttentionShape& shape, float* out) override;
  void moe_route(const WeightMatrix& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
                 float* weights) override;
  void moe_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, const int32_t* ids, const float* weights,
               int64_t k, float* out) override;
  void dense_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, float* out) override;
  void add(float* x, const float* y, int64_t n) override;
  void output_logits(const NormWeight& norm, const WeightMatrix& output, const float* x, int64_t n_rows, float eps,
                     float* logits) override;

 private:
  // A device allocation that grows to its high-water mark.
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
    void* need(size_t n);
    float* f(size_t n_floats) { return static_cast<float*>(need(n_floats * sizeof(float))); }
  };
  struct DeviceCache {
    void* k = nullptr;
    void* v = nullptr;
    int64_t n_layer = 0, n_head_kv = 0, head_dim = 0, capacity = 0;
    bool f16 = false;
  };
  CudaBackend() = default;

  // Device copy of host weight bytes [host, host + bytes): found inside an upload, else uploaded.
  const void* device_of(const void* host, size_t bytes);
  cuda::DeviceMatrix device_matrix(const WeightMatrix& w);
  const float* device_norm(const NormWeight& w) { return static_cast<const float*>(device_of(w.data, w.n * 4)); }
  // x ([n_rows, n_cols] f32 on device) in vec_dot_type(type) in `slot`; returns it.
  const void* activations(GgmlType weight_type, const float* x, int64_t n_rows, int64_t n_cols, Buffer& slot);
  DeviceCache& device_cache(const KvCache& cache);
  float* upload_floats(Buffer& b, const float* host, int64_t n);
  // y = matmul of x (device f32 [n, w.n_in]) with w, quantising through `slot`.
  void matmul_f32(const WeightMatrix& w, const float* x, int64_t n, float* y, Buffer& slot);

  cuda::DeviceInfo info_;
  std::map<const uint8_t*, std::pair<size_t, void*>> uploads_;  // host start -> (bytes, device)
  std::unordered_map<const KvCache*, DeviceCache> caches_;
  Buffer in_, in2_, out_, act_, act2_, scratch_, ids_, weights_, groups_, rows_, slot_row_;
  Buffer moe_x_, moe_gate_, moe_up_, moe_down_, ffn_gate_, ffn_up_;
  std::vector<int32_t> host_groups_, host_rows_, host_slot_row_;
  std::vector<int64_t> expert_count_, expert_offset_;
};

}  // namespace popper

#endif  // POPPER_HAVE_CUDA
