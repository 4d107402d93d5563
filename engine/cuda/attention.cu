// The KV cache's device side and attention over it: store_kv, and split-K (flash-decoding)
// attention, per query head or grouped per KV head, with the position read from device memory
// so a recorded decode step replays at every position. Arithmetic mirrors the CPU's attention
// (engine/model/cpu_backend.cpp) within the NMSE bound of falsifiers/cuda_backend_test.cpp.
#include <algorithm>
#include <cmath>

#include "engine/cuda/common.cuh"
#include "engine/cuda/cuda_ops.h"

namespace popper::cuda {
namespace {

__global__ void store_kv_kernel(DeviceKv kv, const int32_t* pos0, int64_t n_tokens, const float* k, const float* v) {
  const int64_t kv_dim = kv.n_head_kv * kv.head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * kv_dim) return;
  const int64_t t = i / kv_dim, h = (i % kv_dim) / kv.head_dim, d = i % kv.head_dim;
  const int64_t at = (h * kv.capacity + int64_t(*pos0) + t) * kv.head_dim + d;
  if (kv.f16) {
    static_cast<__half*>(kv.k)[at] = __float2half_rn(k[i]);
    static_cast<__half*>(kv.v)[at] = __float2half_rn(v[i]);
  } else {
    static_cast<float*>(kv.k)[at] = k[i];
    static_cast<float*>(kv.v)[at] = v[i];
  }
}

__device__ __forceinline__ float kv_at(const DeviceKv& kv, const void* base, int64_t at) {
  return kv.f16 ? __half2float(static_cast<const __half*>(base)[at]) : static_cast<const float*>(base)[at];
}

constexpr int kAttnThreads = 128;
// Positions per span: one block's scores fit in shared memory, and a 4096-deep decode step
// still spreads each head over 16 blocks.
constexpr int kAttnSpan = 256;
// The most bytes of span partials attention() keeps at once; longer prefills run in token chunks.
constexpr size_t kAttnScratchCap = size_t(64) << 20;

// One block per (token, query head, span of positions). Writes the span's unnormalised output
// sum_j e^(s_j - m) v_j, its max m and its sum l = sum_j e^(s_j - m) to part[(th, span)]:
// [head_dim + 2] floats. A span past the token's last position writes l = 0.
__global__ void attention_span_kernel(DeviceKv kv, const float* q, int64_t t_begin, const int32_t* pos0,
                                      int64_t n_head, float scale, int64_t n_spans, float* part) {
  __shared__ float qs[kMaxAttentionHeadDim];
  __shared__ float sc[kAttnSpan];
  __shared__ float red[kAttnThreads / 32];
  const int64_t th = blockIdx.x, span = blockIdx.y;
  const int64_t t = th / n_head, h = th % n_head;
  const int64_t hd = kv.head_dim, kvh = h / (n_head / kv.n_head_kv);
  const int64_t n_kv = int64_t(*pos0) + t_begin + t + 1;  // causal: positions [0, n_kv)
  const int64_t p0 = span * kAttnSpan;
  const int64_t p1 = min(p0 + int64_t(kAttnSpan), n_kv);
  float* o = part + (th * n_spans + span) * (hd + 2);
  if (p0 >= p1) {  // uniform per block: no thread reaches a barrier
    if (threadIdx.x == 0) {
      o[hd] = -INFINITY;
      o[hd + 1] = 0.0f;
    }
    return;
  }
  const float* qh = q + th * hd;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qh[i];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  const int64_t base = kvh * kv.capacity * hd;
  float local_max = -INFINITY;
  for (int64_t j = p0 + warp; j < p1; j += n_warps) {
    float s = 0.0f;
    for (int64_t i = lane; i < hd; i += 32) s += qs[i] * kv_at(kv, kv.k, base + j * hd + i);
    s = warp_sum(s) * scale;
    if (lane == 0) sc[j - p0] = s;
    local_max = fmaxf(local_max, s);
  }
  if (lane == 0) red[warp] = local_max;
  __syncthreads();
  float max = -INFINITY;
  for (int w = 0; w < n_warps; ++w) max = fmaxf(max, red[w]);
  __syncthreads();  // every thread has read red before it is reused for the sums
  float local_sum = 0.0f;
  for (int64_t j = p0 + threadIdx.x; j < p1; j += blockDim.x) {
    const float e = expf(sc[j - p0] - max);
    sc[j - p0] = e;
    local_sum += e;
  }
  local_sum = warp_sum(local_sum);
  if (lane == 0) red[warp] = local_sum;
  __syncthreads();
  float sum = 0.0f;
  for (int w = 0; w < n_warps; ++w) sum += red[w];
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = p0; j < p1; ++j) acc += sc[j - p0] * kv_at(kv, kv.v, base + j * hd + i);
    o[i] = acc;
  }
  if (threadIdx.x == 0) {
    o[hd] = max;
    o[hd + 1] = sum;
  }
}

// The grouped form of attention_span_kernel: one block per (token, KV head, span) computes the
// spans of all G = n_head / n_head_kv query heads that share the KV head, so each key and value
// is read once per group instead of once per query head (8x less KV traffic for 30B-A3B's GQA).
// Same part layout and the same per-head formulas; the softmax sums run in another order.
constexpr int kMaxAttnGroup = 16;

__global__ void attention_span_gqa_kernel(DeviceKv kv, const float* q, int64_t t_begin, const int32_t* pos0,
                                          int64_t n_head, float scale, int64_t n_spans, float* part) {
  __shared__ float qs[kMaxAttnGroup * kMaxAttentionHeadDim];
  __shared__ float sc[kMaxAttnGroup * kAttnSpan];
  __shared__ float head_max[kMaxAttnGroup], head_sum[kMaxAttnGroup];
  const int64_t group = n_head / kv.n_head_kv;
  const int64_t tk = blockIdx.x, span = blockIdx.y;
  const int64_t t = tk / kv.n_head_kv, kvh = tk % kv.n_head_kv;
  const int64_t hd = kv.head_dim;
  const int64_t n_kv = int64_t(*pos0) + t_begin + t + 1;  // causal: positions [0, n_kv)
  const int64_t p0 = span * kAttnSpan;
  const int64_t p1 = min(p0 + int64_t(kAttnSpan), n_kv);
  auto out_of = [&](int64_t g) { return part + ((t * n_head + kvh * group + g) * n_spans + span) * (hd + 2); };
  if (p0 >= p1) {  // uniform per block: no thread reaches a barrier
    for (int64_t g = threadIdx.x; g < group; g += blockDim.x) {
      out_of(g)[hd] = -INFINITY;
      out_of(g)[hd + 1] = 0.0f;
    }
    return;
  }
  const float* qg = q + (t * n_head + kvh * group) * hd;  // the group's heads are adjacent
  for (int64_t i = threadIdx.x; i < group * hd; i += blockDim.x) qs[i] = qg[i];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  const int64_t base = kvh * kv.capacity * hd;
  for (int64_t j = p0 + warp; j < p1; j += n_warps) {  // each key once, against every head
    constexpr int kLaneDims = int(kMaxAttentionHeadDim / 32);
    const int lane_dims = int(hd / 32);
    float k_lane[kLaneDims];  // unrolled with a guard: stays in registers
#pragma unroll
    for (int r = 0; r < kLaneDims; ++r) k_lane[r] = r < lane_dims ? kv_at(kv, kv.k, base + j * hd + lane + 32 * r) : 0.0f;
    for (int64_t g = 0; g < group; ++g) {
      float s = 0.0f;
#pragma unroll
      for (int r = 0; r < kLaneDims; ++r) {
        if (r < lane_dims) s += qs[g * hd + lane + 32 * r] * k_lane[r];
      }
      s = warp_sum(s) * scale;
      if (lane == 0) sc[g * kAttnSpan + (j - p0)] = s;
    }
  }
  __syncthreads();
  for (int64_t g = warp; g < group; g += n_warps) {  // softmax numerators, one warp per head
    float* sg = sc + g * kAttnSpan;
    float m = -INFINITY;
    for (int64_t j = p0 + lane; j < p1; j += 32) m = fmaxf(m, sg[j - p0]);
    m = warp_max(m);
    float sum = 0.0f;
    for (int64_t j = p0 + lane; j < p1; j += 32) {
      const float e = expf(sg[j - p0] - m);
      sg[j - p0] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      head_max[g] = m;
      head_sum[g] = sum;
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {  // each value once, into every head
    float acc[kMaxAttnGroup] = {};
    for (int64_t j = p0; j < p1; ++j) {
      const float v = kv_at(kv, kv.v, base + j * hd + i);
#pragma unroll
      for (int g = 0; g < kMaxAttnGroup; ++g) {
        if (g < group) acc[g] += sc[g * kAttnSpan + (j - p0)] * v;
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxAttnGroup; ++g) {
      if (g < group) out_of(g)[i] = acc[g];
    }
  }
  for (int64_t g = threadIdx.x; g < group; g += blockDim.x) {
    out_of(g)[hd] = head_max[g];
    out_of(g)[hd + 1] = head_sum[g];
  }
}

// One block per (token, query head): out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s.
__global__ void attention_merge_kernel(const float* part, int64_t n_spans, int64_t hd, float* out) {
  const int64_t th = blockIdx.x;
  const float* p = part + th * n_spans * (hd + 2);
  float m = -INFINITY;
  for (int64_t s = 0; s < n_spans; ++s) {
    if (p[s * (hd + 2) + hd + 1] > 0.0f) m = fmaxf(m, p[s * (hd + 2) + hd]);
  }
  float den = 0.0f;
  for (int64_t s = 0; s < n_spans; ++s) {
    const float l = p[s * (hd + 2) + hd + 1];
    if (l > 0.0f) den += expf(p[s * (hd + 2) + hd] - m) * l;
  }
  const float inv = 1.0f / den;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float num = 0.0f;
    for (int64_t s = 0; s < n_spans; ++s) {
      const float* ps = p + s * (hd + 2);
      if (ps[hd + 1] > 0.0f) num += expf(ps[hd] - m) * ps[i];
    }
    out[th * hd + i] = num * inv;
  }
}

}  // namespace

void store_kv(const DeviceKv& kv, const int32_t* pos0, int64_t n_tokens, const float* k, const float* v) {
  const int64_t n = n_tokens * kv.n_head_kv * kv.head_dim;
  if (n == 0) return;
  POPPER_LAUNCH(blocks_for(n, 256), 256, store_kv_kernel)(kv, pos0, n_tokens, k, v);
  POPPER_CUDA_LAUNCHED();
}

namespace {
int64_t attention_spans(int64_t n_kv_bound) { return (n_kv_bound + kAttnSpan - 1) / kAttnSpan; }
int64_t attention_chunk_tokens(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t n_kv_bound) {
  const size_t per_token = size_t(n_head * attention_spans(n_kv_bound) * (head_dim + 2)) * sizeof(float);
  const int64_t fit = int64_t(kAttnScratchCap / per_token);
  return std::max<int64_t>(1, std::min(n_tokens, fit));
}
}  // namespace

size_t attention_scratch_bytes(int64_t n_tokens, int64_t n_head, int64_t head_dim, int64_t n_kv_bound) {
  const int64_t chunk = attention_chunk_tokens(n_tokens, n_head, head_dim, n_kv_bound);
  return size_t(chunk * n_head * attention_spans(n_kv_bound) * (head_dim + 2)) * sizeof(float);
}

void attention(const DeviceKv& kv, const float* q, int64_t n_tokens, const int32_t* pos0, int64_t n_kv_bound,
               int64_t n_head, float scale, float* out, void* scratch) {
  if (n_tokens == 0) return;
  POPPER_CHECK(kv.head_dim <= kMaxAttentionHeadDim, "head_dim ", kv.head_dim, " is past the attention kernel's ",
               kMaxAttentionHeadDim);
  const int64_t hd = kv.head_dim, n_spans = attention_spans(n_kv_bound);
  const int64_t chunk = attention_chunk_tokens(n_tokens, n_head, hd, n_kv_bound);
  auto* part = static_cast<float*>(scratch);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    const int64_t nt = std::min(chunk, n_tokens - t0);
    const int64_t group = n_head / kv.n_head_kv;
    if (group >= 2 && group <= kMaxAttnGroup && hd % 32 == 0) {  // shared KV heads: read them once
      const dim3 grid(unsigned(nt * kv.n_head_kv), unsigned(n_spans));
      POPPER_LAUNCH(grid, kAttnThreads, attention_span_gqa_kernel)(kv, q + t0 * n_head * hd, t0, pos0, n_head,
                                                                   scale, n_spans, part);
    } else {
      const dim3 grid(unsigned(nt * n_head), unsigned(n_spans));
      POPPER_LAUNCH(grid, kAttnThreads, attention_span_kernel)(kv, q + t0 * n_head * hd, t0, pos0, n_head, scale,
                                                                 n_spans, part);
    }
    POPPER_CUDA_LAUNCHED();
    POPPER_LAUNCH(unsigned(nt * n_head), 128, attention_merge_kernel)(part, n_spans, hd, out + t0 * n_head * hd);
    POPPER_CUDA_LAUNCHED();
  }
}

}  // namespace popper::cuda
