// The CUDA layer's plain C++ API: device memory, copies and the forward pass's kernels, with no
// CUDA type in sight (device memory is a `void*` / `float*` the caller never dereferences).
// Only engine/cuda/*.cu include CUDA headers; the backend (engine/cuda/cuda_backend.cpp) calls this API.
//
// Everything runs in order on one stream owned by the layer. Copies to host return when the data
// is there. Kernels that depend on the position in the sequence read it from device memory
// (`pos0`: one int32 on the device), so a recorded decode step (CUDA graph, below) replays at
// the next position without being recorded again. Launch errors are bugs and abort with file:line; allocation and device errors are
// input (a missing GPU, too little memory) and come back as a Status naming the bytes.
//
// Shapes follow engine/model/backend.h: "[n_rows, n]" is n_rows rows of n contiguous values.
// Quantised weight rows are ggml blocks (engine/quant/blocks.h) exactly as in the GGUF file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"

namespace popper::cuda {

struct DeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int n_sm = 0;
  uint64_t total_bytes = 0, free_bytes = 0;
  double peak_gb_per_s = 0;  // 2 * memory clock * bus width, from the device attributes
};

// Selects device 0 and creates the stream and cuBLAS handle (once per process). Error when no
// device or driver is present, with the runtime's reason.
Result<DeviceInfo> init();
// Free and total bytes now.
DeviceInfo device_info();

// Device memory. alloc's error names the bytes asked for and the bytes free.
Result<void*> alloc(size_t bytes);
void free(void* p);
void upload(void* dst, const void* src, size_t bytes);    // host -> device, returns when done
void download(void* dst, const void* src, size_t bytes);  // device -> host, returns when done
void memset_zero(void* dst, size_t bytes);
void synchronize();

// --- graphs -----------------------------------------------------------------------------------
// Records every launch issued on the stream between begin_capture and end_capture (nothing runs
// meanwhile), then instantiates it: an executable graph that replays them with one launch.
// Between the two, only kernels and device-to-device copies may be issued (no allocation, no
// copy to or from the host): such a call fails at once and invalidates the capture, and the
// checked launches that follow abort. end_capture's error covers only what the runtime reports
// when ending or instantiating. POPPER_CUDA_GRAPHS=0 (cuda_backend.h) is the way around a
// recording that does not work.
void begin_capture();
Result<void*> end_capture();
void launch_graph(void* graph);  // queued on the stream, like a kernel
void destroy_graph(void* graph);

// Bytes of one activation row of n floats converted to `vec_dot_type` (F32, Q8_0 or Q8_K).
int64_t activation_row_bytes(GgmlType vec_dot_type, int64_t n);
// The activation format of a weight type (Q8_K for k-quants, Q8_0 for Q8_0, F32 otherwise).
GgmlType vec_dot_type(GgmlType weight_type);
// True when matmul() has a kernel for this weight type.
bool supports_weight_type(GgmlType type);

// --- timing -------------------------------------------------------------------------------------
// CUDA events on the stream, for the backend's per-op profile.
void* event_create();
void event_destroy(void* event);
void event_record(void* event);                     // queued on the stream, like a kernel
float event_elapsed_ms(void* start, void* stop);    // waits until stop has happened

// --- elementwise ------------------------------------------------------------------------------
// x[t, :] = dequantised row tokens[t] of table ([n_vocab rows][row_bytes], type). tokens on device.
void embed(GgmlType type, const void* table, int64_t row_bytes, int64_t n_embd, const int32_t* tokens,
           int64_t n_tokens, float* x);
// y[r, :] = x[r, :] / sqrt(mean(x[r]^2) + eps) * w. x, y: [n_rows, n] (may alias); w: [n].
void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y);
// NeoX RoPE in place. x: [n_tokens, n_heads, head_dim]; token t at position *pos0 + t.
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* pos0, float freq_base);
void add(float* x, const float* y, int64_t n);  // x += y
// Fused forms, bit for bit the plain ops in sequence (Backend::add_rmsnorm / rmsnorm_rope):
// x += y then out = rmsnorm(x) with w; x, y, out: [n_rows, n].
void add_rmsnorm(float* x, const float* y, const float* w, int64_t n_rows, int64_t n, float eps, float* out);
// Per-head rmsnorm (w: [head_dim]) then NeoX RoPE, in place; x: [n_tokens, n_heads, head_dim].
void rmsnorm_rope(float* x, const float* w, int64_t n_tokens, int64_t n_heads, int64_t head_dim, float eps,
                  const int32_t* pos0, float freq_base);
// g[i] = silu(g[i]) * u[i], n elements.
void swiglu(float* g, const float* u, int64_t n);

// Converts x ([n_rows, n_cols] f32) to vec_dot_type rows (activation_row_bytes each), byte for
// byte what the CPU's reference quantisers write.
void quantize_activations(const float* x, int64_t n_rows, int64_t n_cols, GgmlType vec_dot_type, void* out);
// quantize_activations of swiglu(g, u) without writing it out: the same bytes as swiglu() then
// quantize_activations. vec_dot_type Q8_K or Q8_0.
void quantize_swiglu(const float* g, const float* u, int64_t n_rows, int64_t n_cols, GgmlType vec_dot_type,
                     void* out);

// --- matmul -----------------------------------------------------------------------------------
// A weight matrix on the device: n_out rows of row_bytes.
struct DeviceMatrix {
  GgmlType type = GgmlType::F32;
  const void* data = nullptr;
  int64_t n_in = 0, n_out = 0, row_bytes = 0;
};
// y[t * ldy + o] = dot(w row o, x row t), t < n_tokens. x is in vec_dot_type(w.type)
// (activation_row_bytes rows); for F32/F16/BF16 weights it is f32 rows of n_in.
// scratch: at least matmul_scratch_bytes(w, n_tokens) device bytes (cuBLAS staging).
// allow_cublas false keeps float weights on the fused kernel at every batch size, so a row's
// result does not depend on how many tokens share the call (the MoE router: prefill and decode
// must route a token alike).
void matmul(const DeviceMatrix& w, const void* x, int64_t n_tokens, float* y, int64_t ldy, void* scratch,
            bool allow_cublas = true);
size_t matmul_scratch_bytes(const DeviceMatrix& w, int64_t n_tokens);

// Grouped expert matmul (MoE): group g multiplies rows [row0[g], row0[g] + count[g]) of the
// grouped activations x (vec_dot_type rows) with expert expert[g] of `all` (n_expert experts of
// n_out rows each), into the same rows of y ([*, n_out]). groups: device array of
// 3 * n_groups int32 (expert, row0, count); max_count: the largest count. broadcast_x: x is one
// row that every grouped row reads (a single token's activations, not gathered per expert).
void matmul_grouped(const DeviceMatrix& all, int64_t n_out, const void* x, const int32_t* groups, int64_t n_groups,
                    int64_t max_count, float* y, bool broadcast_x = false);
// Two grouped matmuls of one weight type over the same x and groups in one launch (an MoE
// layer's gate and up projections): ya from a, yb from b. a.type must equal b.type.
void matmul_grouped_pair(const DeviceMatrix& a, const DeviceMatrix& b, int64_t n_out, const void* x,
                         const int32_t* groups, int64_t n_groups, int64_t max_count, float* ya, float* yb,
                         bool broadcast_x = false);
// Up to three matrices of one type and n_in against the same x in one launch (Q, K and V):
// y[i] = matmul(w[i], x), row stride w[i].n_out. matmul_multi_fits says whether they qualify
// (same type and n_in, and not a cuBLAS-sized dense product).
bool matmul_multi_fits(const DeviceMatrix* w, int n, int64_t n_tokens);
void matmul_multi(const DeviceMatrix* w, int n, const void* x, int64_t n_tokens, float* const* y);

// --- MoE --------------------------------------------------------------------------------------
// The most experts route_top_k and group_by_expert take.
constexpr int64_t kMaxExperts = 256;
// Groups the n_assign = n_tokens * k assignments ids[] (expert of token a / k, slot a % k) by
// expert, on the device: groups gets the non-empty groups first as (expert, row0, count) and
// zero-count entries up to n_expert; rows[r] = the token of grouped row r; slot_row[a] = the
// grouped row of assignment a; stats = {number of groups, largest count}. Row order within a
// group is unspecified and does not matter: every row is computed on its own.
// groups: 3 * n_expert int32; rows, slot_row: n_assign; stats: 2.
void group_by_expert(const int32_t* ids, int64_t n_assign, int64_t k, int64_t n_expert, int32_t* groups,
                     int32_t* rows, int32_t* slot_row, int32_t* stats);
// Per token: softmax over logits [n_tokens, n_expert] (overwritten by the probabilities), top-k by (prob desc, index asc), weights
// renormalised to sum 1. ids, weights: [n_tokens, k] on device.
// With one token, routing can also write what group_by_expert would (slot s as group s, with
// grouped row s), saving that launch in a decode step: pass its output arrays here.
struct SingleTokenGroups {
  int32_t* groups = nullptr;  // 3 * k
  int32_t* rows = nullptr;    // k
  int32_t* slot_row = nullptr;
  int32_t* stats = nullptr;   // 2
};
void route_top_k(float* logits, int64_t n_tokens, int64_t n_expert, int64_t k, int32_t* ids, float* weights,
                 const SingleTokenGroups& one = {});
// dst[r, :] = src[rows[r], :], n_rows rows of n floats.
void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t n, float* dst);
// out[t, :] = sum_s weights[t, s] * down[slot_row[t * k + s], :], in slot order.
void combine_experts(const float* down, const int32_t* slot_row, const float* weights, int64_t n_tokens, int64_t k,
                     int64_t n, float* out);

// --- attention --------------------------------------------------------------------------------
// Device KV cache of one layer: k, v [n_head_kv, capacity, head_dim], f32 or f16 (f16: kv_f16).
struct DeviceKv {
  void* k = nullptr;
  void* v = nullptr;
  int64_t capacity = 0, n_head_kv = 0, head_dim = 0;
  bool f16 = false;
};
// Writes k, v ([n_tokens, n_head_kv * head_dim] f32) at positions [*pos0, *pos0 + n_tokens).
void store_kv(const DeviceKv& kv, const int32_t* pos0, int64_t n_tokens, const float* k, const float* v);
// The largest head_dim attention() takes.
constexpr int64_t kMaxAttentionHeadDim = 256;
// Causal GQA attention: q [n_tokens, n_head, head_dim] -> out (same shape); query t attends to
// positions [0, *pos0 + t]. Split-K (flash-decoding): each (token, head) is cut into spans of
// positions computed in parallel, then merged. n_kv_bound >= *pos0 + n_tokens sizes the spans'
// grid (pass the capacity when the position is not known on the host, as in a recorded step:
// spans past the live positions exit at once). scratch: attention_scratch_bytes(...) bytes.
void attention(const DeviceKv& kv, const float* q, int64_t n_tokens, const int32_t* pos0, int64_t n_kv_bound,
               int64_t n_head, float scale, float* out, void* scratch);
size_t attention_scratch_bytes(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t n_kv_bound);

}  // namespace popper::cuda
