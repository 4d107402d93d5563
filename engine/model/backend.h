// The backend seam: every operation of the forward pass, one virtual call per operation (never
// per element), with explicit shapes. CpuBackend (cpu_backend.h) implements it on engine/cpu's
// kernels and a ThreadPool; the CUDA issue adds a second implementation of the same entry
// points, checked against this one op by op.
//
// Activation buffers are float arrays owned by the caller (the Session's workspace), row-major:
// "[n_tokens, n_embd]" means n_tokens rows of n_embd contiguous floats. For the CPU backend they
// are host memory; a device backend maps them to its own buffers at the same call boundaries.
#pragma once

#include <cstdint>
#include <span>

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

  // x[t, :] = dequantised row tokens[t] of table [n_embd, n_vocab]. Token ids are in range
  // (the caller checks). x: [n_tokens, n_embd].
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
  // layer il. Error when that passes the cache's capacity.
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
  // read once per call. x, out: [n_tokens, n_embd].
  virtual void moe_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, const int32_t* ids,
                       const float* weights, int64_t k, float* out) = 0;

  // out = down(silu(gate x) * up x). x, out: [n_tokens, n_embd].
  virtual void dense_ffn(const LayerWeights& layer, const float* x, int64_t n_tokens, float* out) = 0;

  // x += y, n elements (the residual stream).
  virtual void add(float* x, const float* y, int64_t n) = 0;

  // logits[r, :] = rmsnorm(x[r, :], norm) · output rows. x: [n_rows, n_embd]; logits: [n_rows, n_vocab].
  virtual void output_logits(const NormWeight& norm, const WeightMatrix& output, const float* x, int64_t n_rows,
                             float eps, float* logits) = 0;
};

}  // namespace popper
