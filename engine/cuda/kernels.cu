// Elementwise kernels, activation quantisers and MoE routing (attention: attention.cu). Each mirrors the CPU
// reference's arithmetic (engine/model/cpu_backend.cpp, engine/quant) closely enough that the
// per-op NMSE bounds of falsifiers/cuda_backend_test.cpp hold; the activation quantisers match it
// byte for byte, so the quantised matmuls see the same integers as the CPU.
#include <algorithm>
#include <cmath>

#include "engine/core/faults.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/cuda_ops.h"

namespace popper::cuda {
namespace {

// --- dequantisation of one element (embedding rows) --------------------------------------------
__device__ float dequant_element(GgmlType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case GgmlType::F32:
      return reinterpret_cast<const float*>(row)[i];
    case GgmlType::F16:
      return half_bits_to_float(reinterpret_cast<const uint16_t*>(row)[i]);
    case GgmlType::BF16:
      return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[i]) << 16);
    case GgmlType::Q8_0: {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + i / kQK8_0;
      return __fmul_rn(float(b->qs[i % kQK8_0]), half_bits_to_float(b->d));
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool q5 = type == GgmlType::Q5_K;
      const uint8_t* blk = row + (i / kQK_K) * (q5 ? sizeof(BlockQ5K) : sizeof(BlockQ4K));
      const int j = int(i % kQK_K), g = j / 64, l = j % 64, hi = l / 32, l32 = l % 32;
      const uint8_t* scales = blk + 4;
      const uint8_t* qs = blk + (q5 ? 48 : 16);
      int sc, m;
      scale_min_k4(2 * g + hi, scales, &sc, &m);
      int q = hi ? (qs[g * 32 + l32] >> 4) : (qs[g * 32 + l32] & 0xF);
      if (q5) q += ((blk[16 + l32] >> (2 * g + hi)) & 1) << 4;
      const float d = half_bits_to_float(reinterpret_cast<const uint16_t*>(blk)[0]);
      const float dmin = half_bits_to_float(reinterpret_cast<const uint16_t*>(blk)[1]);
      return __fsub_rn(__fmul_rn(__fmul_rn(d, float(sc)), float(q)), __fmul_rn(dmin, float(m)));
    }
    case GgmlType::Q6_K: {
      const auto* b = reinterpret_cast<const BlockQ6K*>(row) + i / kQK_K;
      const int j = int(i % kQK_K), g = j / 128, r = j % 128, qq = r / 32, l = r % 32;
      const uint8_t qlb = b->ql[64 * g + (qq & 1) * 32 + l];
      const int lo = qq >= 2 ? (qlb >> 4) : (qlb & 0xF);
      const int q = (lo | (((b->qh[32 * g + l] >> (2 * qq)) & 3) << 4)) - 32;
      const float d = half_bits_to_float(b->d);
      return __fmul_rn(__fmul_rn(d, float(b->scales[8 * g + l / 16 + 2 * qq])), float(q));
    }
    default:
      return NAN;
  }
}

__global__ void embed_kernel(GgmlType type, const uint8_t* table, int64_t row_bytes, int64_t n_embd,
                             const int32_t* tokens, int64_t n_tokens, float* x) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * n_embd) return;
  const int64_t t = i / n_embd, c = i % n_embd;
  x[i] = dequant_element(type, table + int64_t(tokens[t]) * row_bytes, c);
}

// One row of rmsnorm by one block; the sum of squares in double as the CPU (and ggml) does. Every
// kernel that norms a row calls this with the same block size (rmsnorm_threads), so fused and
// plain forms give the same bits. Each thread reads and writes only the elements i = tid +
// k * blockDim, so xr may alias yr.
__device__ void rmsnorm_row(const float* xr, const float* w, int64_t n, float eps, float* yr) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(xr[i]) * double(xr[i]);
  __shared__ double part[32];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (unsigned i = 0; i < blockDim.x / 32; ++i) total += part[i];
    part[0] = total;
  }
  __syncthreads();
  const float scale = 1.0f / sqrtf(float(part[0] / double(n)) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

__global__ void rmsnorm_kernel(const float* x, const float* w, int64_t n, float eps, float* y) {
  rmsnorm_row(x + int64_t(blockIdx.x) * n, w, n, eps, y + int64_t(blockIdx.x) * n);
}

// x += y on one row, then the row's rmsnorm into out: add_kernel's and rmsnorm_kernel's arithmetic.
__global__ void add_rmsnorm_kernel(float* x, const float* y, const float* w, int64_t n, float eps, float* out) {
  float* xr = x + int64_t(blockIdx.x) * n;
  const float* yr = y + int64_t(blockIdx.x) * n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] += yr[i];
  rmsnorm_row(xr, w, n, eps, out + int64_t(blockIdx.x) * n);
}

// theta of pair i at position pos: repeated float multiplication, as the CPU does.
__device__ __forceinline__ float rope_theta(int64_t pos, int64_t i, float theta_scale) {
  float theta = float(pos);
  for (int64_t j = 0; j < i; ++j) theta = __fmul_rn(theta, theta_scale);
  return theta;
}

__device__ __forceinline__ void rope_pair(float* v, int64_t i, int64_t half, float theta) {
  const float c = cosf(theta), s = sinf(theta);
  const float a = v[i], b = v[i + half];
  v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
  v[i + half] = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
}

// One block per (token, head) row of head_dim: rmsnorm in place, then RoPE on the normed row.
__global__ void rmsnorm_rope_kernel(float* x, const float* w, int64_t n_heads, int64_t head_dim, float eps,
                                    const int32_t* pos0, float theta_scale) {
  float* v = x + int64_t(blockIdx.x) * head_dim;
  rmsnorm_row(v, w, head_dim, eps, v);
  __syncthreads();  // RoPE pairs elements other threads normed
  const int64_t half = head_dim / 2, t = int64_t(blockIdx.x) / n_heads;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) rope_pair(v, i, half, rope_theta(int64_t(*pos0) + t, i, theta_scale));
}

// One thread per (token, head, pair).
__global__ void rope_kernel(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* pos0,
                            float theta_scale) {
  const int64_t half = head_dim / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_tokens * n_heads * half) return;
  const int64_t i = idx % half, th = idx / half, t = th / n_heads;
  rope_pair(x + th * head_dim, i, half, rope_theta(int64_t(*pos0) + t, i, theta_scale));
}

// kSubtract: fault cuda_sign_flip (a separate instantiation, so the healthy kernel is unchanged).
template <bool kSubtract>
__global__ void add_kernel(float* x, const float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    if constexpr (kSubtract)
      x[i] -= y[i];
    else
      x[i] += y[i];
  }
}

// silu(g) * u, the CPU's formula.
__device__ __forceinline__ float swiglu_value(float g, float u) { return __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), u); }

__global__ void swiglu_kernel(float* g, const float* u, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) g[i] = swiglu_value(g[i], u[i]);
}

// What an activation quantiser reads: element i of x, or SwiGLU of element i computed on the
// fly (the MoE down projection's input, never written out as floats).
struct PlainInput {
  const float* x;
  __device__ float operator()(int64_t i) const { return x[i]; }
};
struct SwigluInput {
  const float* g;
  const float* u;
  __device__ float operator()(int64_t i) const { return swiglu_value(g[i], u[i]); }
};

// Q8_K: one warp per 256-block, 8 elements per lane. max = the FIRST element of largest |x|.
template <class In>
__global__ void quantize_q8_k_kernel(In in, int64_t n_blocks, int64_t blocks_per_row, int64_t row_bytes,
                                     uint8_t* out) {
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (blk >= n_blocks) return;
  const int64_t row = blk / blocks_per_row, b = blk % blocks_per_row;
  const int64_t x0 = blk * kQK_K;
  auto* y = reinterpret_cast<BlockQ8K*>(out + row * row_bytes) + b;
  float v[8];
  float amax = 0.0f;
  int amax_i = kQK_K;
  for (int e = 0; e < 8; ++e) {
    v[e] = in(x0 + lane * 8 + e);
    const float a = fabsf(v[e]);
    if (a > amax) {
      amax = a;
      amax_i = lane * 8 + e;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float oa = __shfl_xor_sync(0xffffffffu, amax, o);
    const int oi = __shfl_xor_sync(0xffffffffu, amax_i, o);
    if (oa > amax || (oa == amax && oi < amax_i)) {
      amax = oa;
      amax_i = oi;
    }
  }
  if (amax == 0.0f) {
    for (int e = 0; e < 8; ++e) y->qs[lane * 8 + e] = 0;
    if (lane < kQK_K / 16) y->bsums[lane] = 0;
    if (lane == 0) y->d = 0.0f;
    return;
  }
  const float max = in(x0 + amax_i);
  const float iscale = __fdiv_rn(-127.0f, max);
  int sum = 0;
  for (int e = 0; e < 8; ++e) {
    const int q = min(127, __float2int_rn(__fmul_rn(iscale, v[e])));
    y->qs[lane * 8 + e] = int8_t(q);
    sum += q;
  }
  // bsums[j]: 16 elements = lanes 2j and 2j+1.
  const int pair = sum + __shfl_xor_sync(0xffffffffu, sum, 1);
  if (lane % 2 == 0) y->bsums[lane / 2] = int16_t(pair);
  if (lane == 0) y->d = __fdiv_rn(1.0f, iscale);
}

// Q8_0: one warp per 32-block; roundf is ties-away-from-zero like the CPU's std::round.
template <class In>
__global__ void quantize_q8_0_kernel(In in, int64_t n_blocks, int64_t blocks_per_row, int64_t row_bytes,
                                     uint8_t* out) {
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (blk >= n_blocks) return;
  const int64_t row = blk / blocks_per_row, b = blk % blocks_per_row;
  auto* y = reinterpret_cast<BlockQ8_0*>(out + row * row_bytes) + b;
  const float v = in(blk * kQK8_0 + lane);
  const float amax = warp_max(fabsf(v));
  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
  y->qs[lane] = int8_t(roundf(__fmul_rn(v, id)));
  if (lane == 0) y->d = __half_as_ushort(__float2half_rn(d));
}

// One warp per token: softmax (sum in double), then k rounds of a warp arg-max over the
// probabilities not yet taken (the lower index on ties); weights renormalised in slot order.
// Lane l holds experts l, l + 32, ... in registers.
constexpr int kRouteMaxPerLane = int(kMaxExperts / 32);

__global__ void route_kernel(float* logits, int64_t n_tokens, int64_t n_expert, int64_t k, int32_t* ids,
                             float* weights, SingleTokenGroups one) {
  const int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (t >= n_tokens) return;  // t is the same for the whole warp
  float* p = logits + t * n_expert;
  float v[kRouteMaxPerLane];
  float max = -INFINITY;
  for (int r = 0; r < kRouteMaxPerLane; ++r) {
    const int64_t i = lane + 32 * r;
    v[r] = i < n_expert ? p[i] : -INFINITY;
    max = fmaxf(max, v[r]);
  }
  max = warp_max(max);
  double sum = 0.0;
  for (int r = 0; r < kRouteMaxPerLane; ++r) {
    if (lane + 32 * r < n_expert) {
      v[r] = expf(v[r] - max);
      sum += v[r];
    }
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv = float(1.0 / sum);
  for (int r = 0; r < kRouteMaxPerLane; ++r) {
    const int64_t i = lane + 32 * r;
    if (i < n_expert) {
      v[r] = __fmul_rn(v[r], inv);
      p[i] = v[r];
    } else {
      v[r] = -1.0f;  // below every probability: never picked
    }
  }
  int32_t* id = ids + t * k;
  float* w = weights + t * k;
  float wsum = 0.0f;
  for (int64_t s = 0; s < k; ++s) {
    float best = -2.0f;
    int best_i = 0x7fffffff;
    for (int r = 0; r < kRouteMaxPerLane; ++r) {  // ascending index: strict > keeps the lower one
      if (v[r] > best) {
        best = v[r];
        best_i = lane + 32 * r;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (ob > best || (ob == best && oi < best_i)) {
        best = ob;
        best_i = oi;
      }
    }
    if (lane == best_i % 32) {
      for (int r = 0; r < kRouteMaxPerLane; ++r) {
        if (r == best_i / 32) v[r] = -1.0f;
      }
    }
    if (lane == 0) {
      id[s] = best_i;
      w[s] = best;
    }
    wsum = __fadd_rn(wsum, best);
  }
  if (lane == 0) {
    for (int64_t s = 0; s < k; ++s) w[s] = __fdiv_rn(w[s], wsum);
  }
  if (one.groups != nullptr && lane == 0) {  // n_tokens == 1: slot s is group s, grouped row s
    for (int64_t s = 0; s < k; ++s) {
      one.groups[3 * s] = id[s];
      one.groups[3 * s + 1] = int32_t(s);
      one.groups[3 * s + 2] = 1;
      one.rows[s] = 0;
      one.slot_row[s] = int32_t(s);
    }
    one.stats[0] = int32_t(k);
    one.stats[1] = 1;
  }
}

__global__ void gather_kernel(const float* src, const int32_t* rows, int64_t n_rows, int64_t n, float* dst) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * n) return;
  dst[i] = src[int64_t(rows[i / n]) * n + i % n];
}

__global__ void combine_kernel(const float* down, const int32_t* slot_row, const float* weights, int64_t n_tokens,
                               int64_t k, int64_t n, float* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * n) return;
  const int64_t t = i / n, c = i % n;
  float acc = 0.0f;
  for (int64_t s = 0; s < k; ++s) {
    const float term = __fmul_rn(weights[t * k + s], down[int64_t(slot_row[t * k + s]) * n + c]);
    acc = s == 0 ? term : __fadd_rn(acc, term);
  }
  out[i] = acc;
}

// One block for all assignments: counts per expert (shared atomics), offsets by one thread, then
// every assignment takes the next row of its expert's group.
__global__ void group_by_expert_kernel(const int32_t* ids, int64_t n_assign, int64_t k, int64_t n_expert,
                                       int32_t* groups, int32_t* rows, int32_t* slot_row, int32_t* stats) {
  __shared__ int32_t counts[kMaxExperts];
  __shared__ int32_t cursor[kMaxExperts];  // fill cursors
  for (int64_t e = threadIdx.x; e < n_expert; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (int64_t a = threadIdx.x; a < n_assign; a += blockDim.x) atomicAdd(&counts[ids[a]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t off = 0, n_groups = 0, max_count = 0;
    for (int64_t e = 0; e < n_expert; ++e) {
      cursor[e] = off;
      if (counts[e] > 0) {
        groups[3 * n_groups] = int32_t(e);
        groups[3 * n_groups + 1] = off;
        groups[3 * n_groups + 2] = counts[e];
        max_count = max(max_count, counts[e]);
        ++n_groups;
      }
      off += counts[e];
    }
    for (int64_t g = n_groups; g < n_expert; ++g) {
      groups[3 * g] = 0;
      groups[3 * g + 1] = 0;
      groups[3 * g + 2] = 0;
    }
    stats[0] = n_groups;
    stats[1] = max_count;
  }
  __syncthreads();
  for (int64_t a = threadIdx.x; a < n_assign; a += blockDim.x) {
    const int32_t row = atomicAdd(&cursor[ids[a]], 1);
    slot_row[a] = row;
    rows[row] = int32_t(a / k);
  }
}

}  // namespace

void embed(GgmlType type, const void* table, int64_t row_bytes, int64_t n_embd, const int32_t* tokens,
           int64_t n_tokens, float* x) {
  const int64_t n = n_tokens * n_embd;
  if (n == 0) return;
  POPPER_LAUNCH(blocks_for(n, 256), 256, embed_kernel)(type, static_cast<const uint8_t*>(table), row_bytes, n_embd,
                                                         tokens, n_tokens, x);
  POPPER_CUDA_LAUNCHED();
}

namespace {
int rmsnorm_threads(int64_t n) { return n >= 1024 ? 256 : 64; }
float rope_theta_scale(int64_t head_dim, float freq_base) {
  return std::pow(freq_base, -2.0f / float(head_dim));  // the same powf as the CPU
}
}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y) {
  if (n_rows == 0) return;
  POPPER_LAUNCH(unsigned(n_rows), rmsnorm_threads(n), rmsnorm_kernel)(x, w, n, eps, y);
  POPPER_CUDA_LAUNCHED();
}

void add_rmsnorm(float* x, const float* y, const float* w, int64_t n_rows, int64_t n, float eps, float* out) {
  if (n_rows == 0) return;
  POPPER_LAUNCH(unsigned(n_rows), rmsnorm_threads(n), add_rmsnorm_kernel)(x, y, w, n, eps, out);
  POPPER_CUDA_LAUNCHED();
}

void rmsnorm_rope(float* x, const float* w, int64_t n_tokens, int64_t n_heads, int64_t head_dim, float eps,
                  const int32_t* pos0, float freq_base) {
  if (n_tokens * n_heads == 0) return;
  POPPER_LAUNCH(unsigned(n_tokens * n_heads), rmsnorm_threads(head_dim), rmsnorm_rope_kernel)(
      x, w, n_heads, head_dim, eps, pos0, rope_theta_scale(head_dim, freq_base));
  POPPER_CUDA_LAUNCHED();
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* pos0, float freq_base) {
  const int64_t n = n_tokens * n_heads * (head_dim / 2);
  if (n == 0) return;
  POPPER_LAUNCH(blocks_for(n, 256), 256, rope_kernel)(x, n_tokens, n_heads, head_dim, pos0,
                                                        rope_theta_scale(head_dim, freq_base));
  POPPER_CUDA_LAUNCHED();
}

void add(float* x, const float* y, int64_t n) {
  if (n == 0) return;
  if (fault_on(Fault::kCudaSignFlip))
    POPPER_LAUNCH(blocks_for(n, 256), 256, add_kernel<true>)(x, y, n);
  else
    POPPER_LAUNCH(blocks_for(n, 256), 256, add_kernel<false>)(x, y, n);
  POPPER_CUDA_LAUNCHED();
}

void swiglu(float* g, const float* u, int64_t n) {
  if (n == 0) return;
  POPPER_LAUNCH(blocks_for(n, 256), 256, swiglu_kernel)(g, u, n);
  POPPER_CUDA_LAUNCHED();
}

int64_t activation_row_bytes(GgmlType t, int64_t n) {
  switch (t) {
    case GgmlType::Q8_K:
      return n / kQK_K * int64_t(sizeof(BlockQ8K));
    case GgmlType::Q8_0:
      return n / kQK8_0 * int64_t(sizeof(BlockQ8_0));
    default:
      return n * 4;
  }
}

namespace {
template <class In>
void quantize_rows(In in, int64_t n_rows, int64_t n_cols, GgmlType t, void* out) {
  const int64_t row_bytes = activation_row_bytes(t, n_cols);
  const int64_t bs = t == GgmlType::Q8_K ? kQK_K : kQK8_0;
  POPPER_CHECK(n_cols % bs == 0, "activation row of ", n_cols, " is not a multiple of ", bs);
  const int64_t per_row = n_cols / bs, n_blocks = n_rows * per_row;
  auto* o = static_cast<uint8_t*>(out);
  if (t == GgmlType::Q8_K) {
    POPPER_LAUNCH(blocks_for(n_blocks, 4), 128, quantize_q8_k_kernel<In>)(in, n_blocks, per_row, row_bytes, o);
  } else {
    POPPER_CHECK(t == GgmlType::Q8_0, "activation type ", ggml_type_name(t));
    POPPER_LAUNCH(blocks_for(n_blocks, 4), 128, quantize_q8_0_kernel<In>)(in, n_blocks, per_row, row_bytes, o);
  }
  POPPER_CUDA_LAUNCHED();
}
}  // namespace

void quantize_activations(const float* x, int64_t n_rows, int64_t n_cols, GgmlType t, void* out) {
  if (n_rows == 0) return;
  if (t == GgmlType::F32) {
    const size_t bytes = size_t(n_rows * activation_row_bytes(t, n_cols));
    POPPER_CUDA_CHECK(cudaMemcpyAsync(out, x, bytes, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  quantize_rows(PlainInput{x}, n_rows, n_cols, t, out);
}

void quantize_swiglu(const float* g, const float* u, int64_t n_rows, int64_t n_cols, GgmlType t, void* out) {
  if (n_rows == 0) return;
  POPPER_CHECK(t != GgmlType::F32, "quantize_swiglu: F32 activations are swiglu() in place");
  quantize_rows(SwigluInput{g, u}, n_rows, n_cols, t, out);
}

void route_top_k(float* logits, int64_t n_tokens, int64_t n_expert, int64_t k, int32_t* ids, float* weights,
                 const SingleTokenGroups& one) {
  if (n_tokens == 0) return;
  POPPER_CHECK(n_expert <= 32 * kRouteMaxPerLane, "", n_expert, " experts are past the routing kernel's ",
               32 * kRouteMaxPerLane);
  POPPER_CHECK(k >= 1 && k <= n_expert, "top-", k, " of ", n_expert, " experts");
  POPPER_CHECK(one.groups == nullptr || n_tokens == 1, "single-token grouping for ", n_tokens, " tokens");
  POPPER_LAUNCH(blocks_for(n_tokens * 32, 128), 128, route_kernel)(logits, n_tokens, n_expert, k, ids, weights, one);
  POPPER_CUDA_LAUNCHED();
}

void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t n, float* dst) {
  if (n_rows * n == 0) return;
  POPPER_LAUNCH(blocks_for(n_rows * n, 256), 256, gather_kernel)(src, rows, n_rows, n, dst);
  POPPER_CUDA_LAUNCHED();
}

void combine_experts(const float* down, const int32_t* slot_row, const float* weights, int64_t n_tokens, int64_t k,
                     int64_t n, float* out) {
  if (n_tokens * n == 0) return;
  POPPER_LAUNCH(blocks_for(n_tokens * n, 256), 256, combine_kernel)(down, slot_row, weights, n_tokens, k, n, out);
  POPPER_CUDA_LAUNCHED();
}

void group_by_expert(const int32_t* ids, int64_t n_assign, int64_t k, int64_t n_expert, int32_t* groups,
                     int32_t* rows, int32_t* slot_row, int32_t* stats) {
  POPPER_CHECK(n_expert <= kMaxExperts, "", n_expert, " experts are past the grouping kernel's ", kMaxExperts);
  POPPER_LAUNCH(1, 1024, group_by_expert_kernel)(ids, n_assign, k, n_expert, groups, rows, slot_row, stats);
  POPPER_CUDA_LAUNCHED();
}

}  // namespace popper::cuda
