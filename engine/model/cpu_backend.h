// The CPU backend: the Backend ops on engine/cpu's kernels (matmul over quantised weights,
// vec_dot) and one ThreadPool. Every scratch buffer grows to its high-water mark and is then
// reused, so a decode step allocates nothing after the first.
#pragma once

#include <memory>
#include <vector>

#include "engine/core/thread_pool.h"
#include "engine/cpu/matmul.h"
#include "engine/model/backend.h"

namespace popper {

class CpuBackend final : public Backend {
 public:
  // n_threads <= 0: one per hardware thread.
  explicit CpuBackend(int n_threads);

  const char* name() const override { return "cpu"; }
  int n_threads() const override { return pool_.size(); }
  ThreadPool& pool() { return pool_; }

  // Backend memory is host memory: 64-byte aligned blocks, plain copies.
  Result<void*> allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void upload(void* dst, const void* host, size_t bytes) override;
  void download(void* host, const void* src, size_t bytes) override;

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
  // One matmul job: rows [0, w.n_out) of w against x, into y (row stride w.n_out).
  struct MatmulJob {
    WeightMatrix w;
    const cpu::QuantizedActivations* x;
    float* y;
  };
  // Runs every job's rows as one parallel loop over (job, row chunk): one pool dispatch
  // however many matrices (Q/K/V, or every selected expert's gate and up).
  void run_matmuls(const std::vector<MatmulJob>& jobs);
  // The activation slot for a weight's vec_dot type (one per type, quantised on demand).
  cpu::QuantizedActivations& activations_for(GgmlType weight_type, const float* x, int64_t n_rows, int64_t n_cols);

  ThreadPool pool_;
  // Scratch, reused across calls.
  std::vector<cpu::QuantizedActivations> act_;  // indexed by slot, see activations_for
  std::vector<GgmlType> act_type_;
  std::vector<MatmulJob> jobs_;
  std::vector<std::pair<int64_t, int64_t>> chunks_;  // (job, first row) per work item
  std::vector<float> norm_buf_, router_logits_, ffn_gate_, ffn_up_;
  // Attention: per thread, the scores row and a query group in the kernel's activation format.
  std::vector<std::vector<float>> scores_;
  std::vector<cpu::QuantizedActivations> group_q_;
  // MoE grouping: assignments sorted by expert.
  std::vector<int64_t> expert_count_, expert_offset_, slot_row_;  // slot_row_[t*k+s] = row in grouped buffers
  std::vector<int32_t> active_experts_;
  std::vector<float> moe_x_, moe_gate_, moe_up_, moe_down_;
  std::vector<cpu::QuantizedActivations> moe_act_in_, moe_act_up_, moe_act_mid_;  // per expert
};

}  // namespace popper
