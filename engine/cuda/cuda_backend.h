// The CUDA backend: the Backend seam (engine/model/backend.h) on this folder's kernels, in plain
// C++ on cuda_ops.h (only the .cu files include CUDA headers). Built when nvcc is found, into
// popper_cuda (and, for tests, against the CPU emulation: popper_cuda_emu). It registers itself
// with engine/model's factory at start-up, so make_backend (backend_factory.h) is the way in and
// engine/model never needs to know at compile time whether a binary has it.
//
// Memory: a Session's activations are device buffers (Backend::allocate), so a forward step
// runs from the token ids to the logits without touching the host; the only copies are the
// token ids in and the logits out (and the routing, when a session records it). MoE routing and
// the grouping of tokens by expert happen on the device; a decode step (up to 8 tokens) launches
// the grouped expert matmuls on upper bounds of the group counts, so it never waits for the host.
//
// Ownership: every piece of device state belongs to the object it serves, which frees it.
//   - Weights: prepare_weight uploads one tensor into a DeviceWeight (its device copy, in the
//     file's layout), owned by the model's PreparedWeights (Model::weights_on); prepare checks
//     first that the whole model fits (bytes needed vs free) and that its shapes are within the
//     kernels' limits. The file's pages are not needed after the upload (views_file() false).
//   - KV caches: make_kv_cache allocates a DeviceKvCache ([n_layer][n_head_kv][capacity][head_dim]
//     for K and for V, f32 or f16), owned by its Session.
//   - Recorded steps: make_step_record gives each Session a record of its decode step (a CUDA
//     graph), owned by the session.
//   - Scratch (activations in their formats, MoE grouping, attention spans) is the backend's own,
//     grown to its high-water mark.
// Every weight, cache and record of this device serves every CudaBackend (there is one device).
//
// Graphs: a replayable single-token step (Backend::run_step) runs eagerly the first time, is
// captured as a CUDA graph the second time, and is replayed with one launch from then on. The
// position is read from device memory by every position-dependent kernel, and attention spans
// are sized by the cache's capacity, so one record serves every position. A record is dropped
// when any scratch buffer it points at is reallocated (the backend's scratch generation moved).
// POPPER_CUDA_GRAPHS=0 turns recording off (every step then runs eagerly), for diagnosis.
//
// Profile: POPPER_CUDA_PROFILE=1 times every op with CUDA events (and turns recording off:
// events inside a graph cannot be read per op). profile() sums GPU milliseconds per op name.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_objects.h"
#include "engine/model/backend.h"

namespace popper {

class CudaBackend final : public Backend {
 public:
  // Error when no device is usable (the runtime's reason).
  static Result<std::unique_ptr<CudaBackend>> create();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const cuda::DeviceInfo& device_info() const { return info_; }
  // Steps replayed from a recorded graph so far (for the benchmarks' counters and the tests).
  uint64_t graph_replays() const { return graph_replays_; }
  bool graphs_enabled() const { return graphs_enabled_; }

  struct OpTime {
    uint64_t calls = 0;
    double ms = 0;  // GPU time between the op's first and last launch
  };
  bool profiling() const { return profiling_; }
  // Per-op GPU time since the last reset (waits for the ops still queued). Empty unless profiling.
  std::map<std::string, OpTime> profile();
  void reset_profile();

  const char* name() const override { return "cuda"; }
  int n_threads() const override { return 1; }

  const BackendDevice& device() const override { return kCudaDevice; }
  // Uploads one tensor. Error when the device cannot hold it or has no kernel for its type.
  Result<std::unique_ptr<BackendWeight>> prepare_weight(const WeightMatrix& file, int64_t n_expert,
                                                        WeightUse use) override;
  // Error, before anything is uploaded, when the weights do not fit (bytes needed vs free) or a
  // shape is past what the kernels take (head_dim, number of experts).
  Result<std::unique_ptr<PreparedWeights>> prepare(const ModelWeights& weights,
                                                   const CopiedFn& copied = nullptr) override;
  // Error when the device cannot hold it (the bytes) or head_dim is past the attention kernel's.
  Result<std::unique_ptr<KvCache>> make_kv_cache(const KvCacheShape& shape) override;

  Result<void*> allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void upload(void* dst, const void* host, size_t bytes) override;
  void download(void* host, const void* src, size_t bytes) override;
  std::unique_ptr<StepRecord> make_step_record() override;
  Status run_step(const Step& step, const std::function<Status()>& issue) override;

  void embed(const BackendWeight& table, const int32_t* tokens, int64_t n_tokens, float* x) override;
  void rmsnorm(const float* x, const BackendWeight& w, int64_t n_rows, float eps, float* y) override;
  void project(std::span<const Projection> outs, const float* x, int64_t n_tokens) override;
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
            float freq_base) override;
  Status store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                  const float* v) override;
  void attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                 const AttentionShape& shape, float* out) override;
  void moe_route(const BackendWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
                 float* weights) override;
  void moe_ffn(const FfnWeights& experts, const float* x, int64_t n_tokens, const int32_t* ids,
               const float* weights, int64_t k, float* out) override;
  void dense_ffn(const FfnWeights& ffn, const float* x, int64_t n_tokens, float* out) override;
  void add(float* x, const float* y, int64_t n) override;
  void add_rmsnorm(float* x, const float* y, const BackendWeight& w, int64_t n_rows, float eps,
                   float* out) override;
  void rmsnorm_rope(float* x, const BackendWeight& w, int64_t n_tokens, int64_t n_heads, float eps,
                    int64_t pos0, float freq_base) override;
  void output_logits(const BackendWeight& norm, const BackendWeight& output, const float* x, int64_t n_rows,
                     float eps, float* logits) override;

 private:
  // A device scratch allocation that grows to its high-water mark (see need()).
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
  };
  CudaBackend() = default;

  // Times one op when profiling: events around it, read later by profile().
  class OpScope {
   public:
    OpScope(CudaBackend* b, const char* name);
    ~OpScope();
    OpScope(const OpScope&) = delete;
    OpScope& operator=(const OpScope&) = delete;

   private:
    CudaBackend* b_;
    const char* name_;
    void* start_ = nullptr;
  };
  void* take_event();
  void drain_profile();  // folds pending event pairs into profile_

  // `b` with at least n bytes; a reallocation bumps generation_ (records pointing at the old
  // block are dropped) and is refused while capturing.
  void* need(Buffer& b, size_t n);
  float* need_floats(Buffer& b, int64_t n) { return static_cast<float*>(need(b, size_t(n) * sizeof(float))); }
  int32_t* need_ints(Buffer& b, int64_t n) {
    return static_cast<int32_t*>(need(b, size_t(n) * sizeof(int32_t)));
  }
  // x ([n_rows, n_cols] f32 on device) in vec_dot_type(type) in `slot`; returns it.
  const void* activations(GgmlType weight_type, const float* x, int64_t n_rows, int64_t n_cols, Buffer& slot);
  // A device int32 holding pos0: the step's slot inside run_step, else an op slot set now.
  const int32_t* position(int64_t pos0);
  // y = matmul of x (device f32 [n, w.n_in]) with w, quantising through `slot`.
  void matmul_f32(const cuda::DeviceMatrix& w, const float* x, int64_t n, float* y, Buffer& slot,
                  bool allow_cublas = true);

  cuda::DeviceInfo info_;
  bool graphs_enabled_ = true;
  uint64_t generation_ = 0;  // bumped whenever a scratch buffer moves (records pointing at it are stale)
  bool profiling_ = false;
  struct PendingOp {
    const char* name;
    void* start;
    void* stop;
  };
  std::vector<PendingOp> pending_ops_;
  std::vector<void*> free_events_;
  std::map<std::string, OpTime> profile_;
  uint64_t graph_replays_ = 0;
  bool capturing_ = false;
  // Inside run_step: the step's position (in position_slot_[0]) and whether its kernels must
  // not depend on the host-known position (a step that may be recorded).
  bool in_step_ = false;
  bool step_recordable_ = false;
  int64_t step_pos0_ = 0;
  int64_t op_pos0_ = -1;  // value in position_slot_[1], -1: unset
  Buffer position_slot_;  // int32 [2]
  Buffer norm_, logits_, act_, act2_, scratch_, attn_scratch_;
  Buffer groups_, rows_, slot_row_, group_stats_;
  // The ids moe_route last grouped in the same launch (one token), for moe_ffn to reuse.
  const int32_t* grouped_ids_ = nullptr;
  Buffer moe_x_, moe_gate_, moe_up_, moe_down_, ffn_gate_, ffn_up_;
};

}  // namespace popper
