// The backend seam: every operation of the forward pass, one virtual call per operation (never
// per element), with explicit shapes. CpuBackend (cpu_backend.h) implements it on engine/cpu's
// kernels and a ThreadPool; CudaBackend (cuda_backend.h) implements the same entry points on the
// GPU, checked against the CPU op by op (falsifiers/cuda_backend_test.cpp).
//
// Activation buffers live in *backend memory*: host memory for the CPU backend, device memory for
// a GPU backend. The caller gets them from allocate() (BackendArray below owns one), never
// dereferences them itself, and moves data in and out with upload() / download(). Every pointer
// argument of the ops below that is not a weight (x, y, q, ids, weights, out, tokens ...) is such
// a buffer, so a decode step keeps its activations on the device from the embedding to the
// logits. Weights (WeightMatrix / NormWeight) are host views of the GGUF file; a device backend
// keeps its own copy of them (uploaded once).
//
// Arrays are row-major: "[n_tokens, n_embd]" means n_tokens rows of n_embd contiguous floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <utility>

#include "engine/core/result.h"
#include "engine/model/kv_cache.h"
#include "engine/model/weights.h"

namespace popper {

// One output of a shared-input projection: y = x · w^T, y: [n_tokens, w.n_out].
struct Projection {
  const WeightMatrix* w;
  float* y;
};

// Shape of one attention call.
struct AttentionShape {
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
  float scale;  // 1 / sqrt(head_dim)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int n_threads() const = 0;

  // --- backend memory ---------------------------------------------------------------------------
  // `bytes` of backend memory, aligned for any element type. Error when the backend has not that
  // much free (the message names the bytes asked for and free).
  virtual Result<void*> allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  // host -> backend and backend -> host; both return when the bytes are in place (a download
  // waits for every op issued before it).
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;

  // --- steps ------------------------------------------------------------------------------------
  // One forward step of a Session: `issue` calls this backend's ops for n_tokens tokens at
  // positions [pos0, pos0 + n_tokens). A backend may record the ops the first times and replay
  // the record on later calls with the same (owner, n_tokens) instead of calling `issue` (the
  // CUDA backend replays single-token decode steps as one CUDA graph). `replayable` false
  // forbids that (a step that downloads mid-way, e.g. to record routing). So that a replay is
  // exact, a replayable step's ops may depend on the call only through pos0 and through the
  // contents of backend memory, and `issue` must have no host side effects a replay would miss.
  struct Step {
    const void* owner;  // the Session: its buffers are what a record points at
    int64_t n_tokens;
    int64_t pos0;
    bool replayable;
  };
  virtual Status run_step(const Step& step, const std::function<Status()>& issue) {
    (void)step;
    return issue();
  }
  // Forgets what this backend keeps for `owner` (recorded steps) and for `cache` (a device copy);
  // a Session calls it when it ends. Either may be null.
  virtual void release(const void* owner, const KvCache* cache) {
    (void)owner;
    (void)cache;
  }

  // --- ops ----------------------------------------------------------------------------------------

  // x[t, :] = dequantised row tokens[t] of table [n_embd, n_vocab]. Token ids (in backend memory)
  // are in range (the caller checks). x: [n_tokens, n_embd].
  virtual void embed(const WeightMatrix& table, const int32_t* tokens, int64_t n_tokens, float* x) = 0;

  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w. x, y: [n_rows, w.n] (may alias).
  // The per-head Q/K norm is this op over [n_tokens * n_heads, head_dim] with a [head_dim] w.
  virtual void rmsnorm(const float* x, const NormWeight& w, int64_t n_rows, float eps, float* y) = 0;

  // For each projection p: p.y[t, :] = x[t, :] · p.w rows. x: [n_tokens, n_in], every p.w has
  // n_in columns. The input is converted once per activation format and shared (Q, K and V
  // read one normalised x).
  virtual void project(std::span<const Projection> outs, const float* x, int64_t n_tokens) = 0;

  // RoPE, NeoX pairing (x[i], x[i + head_dim/2]), in place, token t at position pos0 + t:
  // theta_i = pos * freq_base^(-2i/head_dim). x: [n_tokens, n_heads, head_dim].
  virtual void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                    float freq_base) = 0;

  // Appends k, v ([n_tokens, n_head_kv * head_dim] each) at positions [pos0, pos0 + n_tokens) of
  // layer il. Error when that passes the cache's capacity. The cache's contents live where the
  // backend keeps them (the host KvCache for the CPU, device memory for CUDA); its bookkeeping
  // (n_pos, commit, truncate) is the caller's.
  virtual Status store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                          const float* v) = 0;

  // Causal GQA attention over the cache: query token t (position pos0 + t) attends to positions
  // [0, pos0 + t]; query head h reads kv head h / (n_head / n_head_kv).
  // q: [n_tokens, n_head, head_dim]; out: [n_tokens, n_head, head_dim].
  virtual void attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                         const AttentionShape& shape, float* out) = 0;

  // MoE routing: logits = x · gate_inp (f32 [n_embd, n_expert]), softmax over all experts, top-k
  // (ties to the lower index), weights renormalised to sum 1.
  // x: [n_tokens, n_embd]; ids, weights: [n_tokens, k] (slot 0 = largest).
  virtual void moe_route(const WeightMatrix& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
                         float* weights) = 0;

  // out[t] = sum over slots s of weights[t, s] * down_e(silu(gate_e x[t]) * up_e x[t]), e = ids[t, s],
  // summed in slot order. Tokens are grouped by expert so each selected expert's weights are
  // read once per call. x, out: [n_tokens, n_embd]; ids, weights as moe_route writes them (backend
  // memory: the grouping happens where the ids are).
  virtual void moe_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, const int32_t* ids,
                       const float* weights, int64_t k, float* out) = 0;

  // out = down(silu(gate x) * up x). x, out: [n_tokens, n_embd].
  virtual void dense_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, float* out) = 0;

  // x += y, n elements (the residual stream).
  virtual void add(float* x, const float* y, int64_t n) = 0;

  // --- fused ops ----------------------------------------------------------------------------------
  // Pairs of ops the forward pass always issues together. A backend may run a pair as one kernel
  // (the CUDA backend does: fewer launches per decode step), but the result must be bit for bit
  // the two ops' result; the defaults are exactly the two ops.
  //
  // x += y, then out = rmsnorm(x) with w. x, y, out: [n_rows, w.n].
  virtual void add_rmsnorm(float* x, const float* y, const NormWeight& w, int64_t n_rows, float eps, float* out) {
    add(x, y, n_rows * w.n);
    rmsnorm(x, w, n_rows, eps, out);
  }
  // The per-head Q/K norm then RoPE, in place. x: [n_tokens, n_heads, w.n] (w.n = head_dim).
  virtual void rmsnorm_rope(float* x, const NormWeight& w, int64_t n_tokens, int64_t n_heads, float eps, int64_t pos0,
                            float freq_base) {
    rmsnorm(x, w, n_tokens * n_heads, eps, x);
    rope(x, n_tokens, n_heads, w.n, pos0, freq_base);
  }

  // logits[r, :] = rmsnorm(x[r, :], norm) · output rows. x: [n_rows, n_embd]; logits: [n_rows, n_vocab].
  virtual void output_logits(const NormWeight& norm, const WeightMatrix& output, const float* x, int64_t n_rows,
                             float eps, float* logits) = 0;
};

// An array of n elements of T in a backend's memory, freed with it. Movable, not copyable.
template <class T>
class BackendArray {
 public:
  BackendArray() = default;
  // Error when the backend cannot hold it.
  static Result<BackendArray> make(Backend& backend, int64_t n) {
    auto p = backend.allocate(size_t(n) * sizeof(T));
    if (!p.ok()) return p.error();
    BackendArray a;
    a.backend_ = &backend;
    a.p_ = static_cast<T*>(p.value());
    a.n_ = n;
    return a;
  }
  // Aborts when the backend cannot hold it: for tests and small fixed buffers.
  BackendArray(Backend& backend, int64_t n) {
    auto a = make(backend, n);
    POPPER_CHECK(a.ok(), "backend memory: ", a.ok() ? std::string() : a.message());
    *this = std::move(a.value());
  }
  ~BackendArray() { reset(); }
  BackendArray(BackendArray&& o) noexcept
      : backend_(std::exchange(o.backend_, nullptr)), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  BackendArray& operator=(BackendArray&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = std::exchange(o.backend_, nullptr);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  BackendArray(const BackendArray&) = delete;
  BackendArray& operator=(const BackendArray&) = delete;

  T* data() const { return p_; }
  int64_t size() const { return n_; }
  // Copies n host elements into [at, at + n) / out of [at, at + n).
  void upload(const T* host, int64_t n, int64_t at = 0) { backend_->upload(p_ + at, host, size_t(n) * sizeof(T)); }
  void download(T* host, int64_t n, int64_t at = 0) const {
    backend_->download(host, p_ + at, size_t(n) * sizeof(T));
  }

 private:
  void reset() {
    if (p_ != nullptr) backend_->deallocate(p_);
    p_ = nullptr;
    n_ = 0;
  }
  Backend* backend_ = nullptr;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace popper
