// The backend seam: what a backend owns, and every operation of the forward pass as one virtual
// call per operation (never per element) with explicit shapes. CpuBackend (cpu_backend.h)
// implements it on engine/cpu's ops; the CUDA backend (engine/cuda/cuda_backend.h) on the GPU,
// checked against the CPU op by op (falsifiers/cuda_backend_test.cpp). Backends other than the CPU
// register themselves with the factory at run time (backend_factory.h), so this layer is compiled
// once and knows none of them.
//
// Ownership. A backend owns what lives in its memory, handed out as objects whose owner frees
// them: the model's weights, prepared once per device (prepare: the backend's layout and
// residency, a BackendWeight per tensor, kept by the Model), a sequence's KV cache
// (make_kv_cache, kept by the Session), and what it remembers of a session's steps
// (make_step_record, kept by the Session). The model binds names and shapes; the backend decides
// layout and residency; nothing is looked up by a caller's address.
//
// Activation buffers live in *backend memory*: host memory for the CPU backend, device memory for
// a GPU backend. The caller gets them from allocate() (BackendArray below owns one), never
// dereferences them itself, and moves data in and out with upload() / download(). Every pointer
// argument of the ops below (x, y, q, ids, weights, out, tokens ...) is such a buffer, so a decode
// step keeps its activations on the device from the embedding to the logits.
//
// Arrays are row-major: "[n_tokens, n_embd]" means n_tokens rows of n_embd contiguous floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>

#include "engine/core/result.h"
#include "engine/cpu/attention.h"
#include "engine/model/kv_cache.h"
#include "engine/model/prepared_weights.h"
#include "engine/model/weights.h"

namespace popper {

// Shape of one attention call: n_head, n_head_kv, head_dim, scale (1 / sqrt(head_dim)).
using AttentionShape = cpu::AttentionShape;

// One output of a shared-input projection: y = x · w^T, y: [n_tokens, w.n_out()].
struct Projection {
  const BackendWeight* w;
  float* y;
};

// The three matrices of a SwiGLU FFN: gate, up [n_embd, n_ff] and down [n_ff, n_embd]; for the MoE
// FFN each holds n_expert experts.
struct FfnWeights {
  const BackendWeight* gate;
  const BackendWeight* up;
  const BackendWeight* down;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int n_threads() const = 0;

  // --- weights ----------------------------------------------------------------------------------
  // The device this backend's weights and caches live on. Backends of one device share a model's
  // prepared weights (every CpuBackend shares the host's; Model::weights_on keeps one per device).
  virtual const BackendDevice& device() const = 0;
  // One tensor in this backend's layout and memory. `file`: all its rows in the file's layout
  // ([n_in, n_out * n_expert]; n_expert 1 for a matrix or a norm, whose n_out is 1); `use`: what
  // the model does with it. The file's bytes must outlive the result while it views_file().
  // Error when the backend cannot hold it (the message names the bytes) or has no kernel for it.
  virtual Result<std::unique_ptr<BackendWeight>> prepare_weight(const WeightMatrix& file, int64_t n_expert,
                                                                WeightUse use) = 0;
  // A norm ([n] f32) through prepare_weight.
  Result<std::unique_ptr<BackendWeight>> prepare_norm(const NormWeight& norm);
  // Takes a model's weights once: every bound tensor through prepare_weight (a tied output shares
  // token_embd's handle). A device backend overrides it to refuse, before copying anything, weights
  // that do not fit (bytes needed vs free) or shapes its kernels do not take. Callers go through
  // Model::weights_on, which keeps the result for every backend of this device. `copied`, when
  // given, is called with a tensor's file bytes as soon as its handle holds a copy of its own
  // (views_file() false), so the caller can hand those pages back before the next tensor is
  // copied: the resident set then never holds both copies of the weights.
  using CopiedFn = std::function<void(const void* data, uint64_t bytes)>;
  virtual Result<std::unique_ptr<PreparedWeights>> prepare(const ModelWeights& weights,
                                                           const CopiedFn& copied = nullptr);

  // --- KV caches --------------------------------------------------------------------------------
  // A KV cache of `shape` in this backend's memory and layout; the caller owns it (and with it the
  // storage). Error when the backend cannot hold it (the message names the bytes).
  virtual Result<std::unique_ptr<KvCache>> make_kv_cache(const KvCacheShape& shape) = 0;

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
  // What a backend keeps about one Session's steps between calls (the CUDA backend: its recorded
  // decode step), owned by the session and freed with it. nullptr: nothing to keep.
  class StepRecord {
   public:
    virtual ~StepRecord() = default;
  };
  virtual std::unique_ptr<StepRecord> make_step_record() { return nullptr; }

  // One forward step of a Session: `issue` calls this backend's ops for n_tokens tokens at
  // positions [pos0, pos0 + n_tokens). A backend may record the ops the first times (into the
  // session's `record`, from make_step_record) and replay the record on later calls with the same
  // n_tokens instead of calling `issue` (the CUDA backend replays single-token decode steps as one
  // CUDA graph). `replayable` false forbids that (a step that downloads mid-way, e.g. to record
  // routing). So that a replay is exact, a replayable step's ops may depend on the call only through
  // pos0 and through the contents of backend memory, and `issue` must have no host side effects a
  // replay would miss.
  struct Step {
    StepRecord* record;  // the session's (may be null)
    int64_t n_tokens;
    int64_t pos0;
    bool replayable;
  };
  virtual Status run_step(const Step& step, const std::function<Status()>& issue) {
    (void)step;
    return issue();
  }

  // --- ops ----------------------------------------------------------------------------------------
  // Every weight argument is a handle this backend's device prepared (a handle of another device
  // is a bug: aborts). Norm weights are [n] f32.

  // x[t, :] = dequantised row tokens[t] of table [n_embd, n_vocab] (prepared for
  // WeightUse::kRowLookup). Token ids (in backend memory) are in range (the caller checks).
  // x: [n_tokens, n_embd].
  virtual void embed(const BackendWeight& table, const int32_t* tokens, int64_t n_tokens, float* x) = 0;

  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w. x, y: [n_rows, w.n_in()] (may alias).
  // The per-head Q/K norm is this op over [n_tokens * n_heads, head_dim] with a [head_dim] w.
  virtual void rmsnorm(const float* x, const BackendWeight& w, int64_t n_rows, float eps, float* y) = 0;

  // For each projection p: p.y[t, :] = x[t, :] · p.w rows. x: [n_tokens, n_in], every p.w has
  // n_in columns. The input is converted once per activation format and shared (Q, K and V
  // read one normalised x).
  virtual void project(std::span<const Projection> outs, const float* x, int64_t n_tokens) = 0;

  // RoPE, NeoX pairing (x[i], x[i + head_dim/2]), in place, token t at position pos0 + t:
  // theta_i = pos * freq_base^(-2i/head_dim). x: [n_tokens, n_heads, head_dim].
  virtual void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                    float freq_base) = 0;

  // Appends k, v ([n_tokens, n_head_kv * head_dim] each) at positions [pos0, pos0 + n_tokens) of
  // layer il of `cache` (one this backend made). Error when that passes the cache's capacity. The
  // bookkeeping (n_pos, commit, truncate) is the caller's.
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
  virtual void moe_route(const BackendWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k,
                         int32_t* ids, float* weights) = 0;

  // out[t] = sum over slots s of weights[t, s] * down_e(silu(gate_e x[t]) * up_e x[t]), e = ids[t, s],
  // summed in slot order. Tokens are grouped by expert so each selected expert's weights are
  // read once per call. experts: the layer's ffn_{gate,up,down}_exps. x, out: [n_tokens, n_embd];
  // ids, weights as moe_route writes them (backend memory: the grouping happens where the ids are).
  virtual void moe_ffn(const FfnWeights& experts, const float* x, int64_t n_tokens, const int32_t* ids,
                       const float* weights, int64_t k, float* out) = 0;

  // out = down(silu(gate x) * up x). x, out: [n_tokens, n_embd].
  virtual void dense_ffn(const FfnWeights& ffn, const float* x, int64_t n_tokens, float* out) = 0;

  // x += y, n elements (the residual stream).
  virtual void add(float* x, const float* y, int64_t n) = 0;

  // --- fused ops ----------------------------------------------------------------------------------
  // Pairs of ops the forward pass always issues together. A backend may run a pair as one kernel
  // (the CUDA backend does: fewer launches per decode step), but the result must be bit for bit
  // the two ops' result; the defaults are exactly the two ops.
  //
  // x += y, then out = rmsnorm(x) with w. x, y, out: [n_rows, w.n_in()].
  virtual void add_rmsnorm(float* x, const float* y, const BackendWeight& w, int64_t n_rows, float eps,
                           float* out) {
    add(x, y, n_rows * w.n_in());
    rmsnorm(x, w, n_rows, eps, out);
  }
  // The per-head Q/K norm then RoPE, in place. x: [n_tokens, n_heads, w.n_in()] (w.n_in() = head_dim).
  virtual void rmsnorm_rope(float* x, const BackendWeight& w, int64_t n_tokens, int64_t n_heads, float eps,
                            int64_t pos0, float freq_base) {
    rmsnorm(x, w, n_tokens * n_heads, eps, x);
    rope(x, n_tokens, n_heads, w.n_in(), pos0, freq_base);
  }

  // logits[r, :] = rmsnorm(x[r, :], norm) · output rows. x: [n_rows, n_embd]; logits: [n_rows, n_vocab].
  virtual void output_logits(const BackendWeight& norm, const BackendWeight& output, const float* x,
                             int64_t n_rows, float eps, float* logits) = 0;
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
