// The CPU backend: the Backend seam on engine/cpu's ops and one ThreadPool. This file owns and
// dispatches; the arithmetic lives in engine/cpu, one op family a file (norm, rope, attention,
// moe_route, moe_ffn, ffn, embed, elementwise, project).
//
// Weights: prepare_weight turns a file view into a cpu::PreparedWeight (cpu::prepare_weight, the
// one place that decides the CPU layout: an x8 repacked copy for the matrices that have one, the
// file's layout in place for the rest; POPPER_REPACK=0 keeps every weight in the file's layout). Every
// CpuBackend runs on the host device, so a model's prepared weights serve all of them (a server's per-slot
// backends share one copy). KV caches: cpu::KvStore (host memory, allocated by the first store).
// Scratch: each op's own, named for what it holds, grown to its high-water mark and then reused,
// so a decode step allocates nothing after the first.
#pragma once

#include <memory>
#include <vector>

#include "engine/core/thread_pool.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/ffn.h"
#include "engine/cpu/moe_ffn.h"
#include "engine/cpu/project.h"
#include "engine/model/backend.h"

namespace popper {

// The host, where every CpuBackend keeps its weights and caches.
inline constexpr BackendDevice kHostDevice{"cpu"};

class CpuBackend final : public Backend {
 public:
  // n_threads <= 0: one per hardware thread.
  explicit CpuBackend(int n_threads);

  const char* name() const override { return "cpu"; }
  int n_threads() const override { return pool_.size(); }
  ThreadPool& pool() { return pool_; }

  const BackendDevice& device() const override { return kHostDevice; }
  Result<std::unique_ptr<BackendWeight>> prepare_weight(const WeightMatrix& file, int64_t n_expert,
                                                        WeightUse use) override;
  Result<std::unique_ptr<KvCache>> make_kv_cache(const KvCacheShape& shape) override;

  // Backend memory is host memory: 64-byte aligned blocks, plain copies.
  Result<void*> allocate(size_t bytes) override;
  void deallocate(void* p) override;
  void upload(void* dst, const void* host, size_t bytes) override;
  void download(void* host, const void* src, size_t bytes) override;

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
  void output_logits(const BackendWeight& norm, const BackendWeight& output, const float* x, int64_t n_rows,
                     float eps, float* logits) override;

 private:
  ThreadPool pool_;
  bool repack_;  // prepare_weight repacks (POPPER_REPACK unset or not "0")
  cpu::Projector projector_;
  std::vector<cpu::Projector::Output> project_outputs_;  // project()'s outputs as the Projector takes them
  std::vector<float> rope_cos_sin_;                      // rope(): one token's cos and sin tables
  cpu::AttentionScratch attention_;
  std::vector<float> router_logits_;  // moe_route(): [n_tokens, n_expert]
  cpu::MoeFfnScratch moe_ffn_;
  cpu::DenseFfnScratch dense_ffn_;
  std::vector<float> output_normed_;  // output_logits(): rmsnorm(x), [n_rows, n_embd]
};

}  // namespace popper
