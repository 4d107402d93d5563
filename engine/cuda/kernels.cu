// Elementwise kernels, activation quantisers, routing and attention. Each mirrors the CPU
// reference's arithmetic (engine/model/cpu_backend.cpp, engine/quant) closely enough that the
// per-op NMSE bounds of falsifiers/cuda_ops_test.cpp hold; the activation quantisers match it
// byte for byte, so the quantised matmuls see the same integers as the CPU.
#include <cmath>

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

// One block per row; the sum of squares in double as the CPU (and ggml) does.
__global__ void rmsnorm_kernel(const float* x, const float* w, int64_t n, float eps, float* y) {
  const float* xr = x + int64_t(blockIdx.x) * n;
  float* yr = y + int64_t(blockIdx.x) * n;
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

// One thread per (token, head, pair). theta by repeated float multiplication as the CPU does.
__global__ void rope_kernel(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                            float theta_scale) {
  const int64_t half = head_dim / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_tokens * n_heads * half) return;
  const int64_t i = idx % half, th = idx / half, t = th / n_heads;
  float theta = float(pos0 + t);
  for (int64_t j = 0; j < i; ++j) theta = __fmul_rn(theta, theta_scale);
  const float c = cosf(theta), s = sinf(theta);
  float* v = x + th * head_dim;
  const float a = v[i], b = v[i + half];
  v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
  v[i + half] = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

__global__ void swiglu_kernel(float* g, const float* u, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = g[i];
  g[i] = __fmul_rn(__fdiv_rn(v, 1.0f + expf(-v)), u[i]);
}

// Q8_K: one warp per 256-block, 8 elements per lane. max = the FIRST element of largest |x|.
__global__ void quantize_q8_k_kernel(const float* x, int64_t n_blocks, int64_t blocks_per_row, int64_t row_bytes,
                                     uint8_t* out) {
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (blk >= n_blocks) return;
  const int64_t row = blk / blocks_per_row, b = blk % blocks_per_row;
  const float* xb = x + blk * kQK_K;
  auto* y = reinterpret_cast<BlockQ8K*>(out + row * row_bytes) + b;
  float v[8];
  float amax = 0.0f;
  int amax_i = kQK_K;
  for (int e = 0; e < 8; ++e) {
    v[e] = xb[lane * 8 + e];
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
  const float max = xb[amax_i];
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
__global__ void quantize_q8_0_kernel(const float* x, int64_t n_blocks, int64_t blocks_per_row, int64_t row_bytes,
                                     uint8_t* out) {
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (blk >= n_blocks) return;
  const int64_t row = blk / blocks_per_row, b = blk % blocks_per_row;
  auto* y = reinterpret_cast<BlockQ8_0*>(out + row * row_bytes) + b;
  const float v = x[blk * kQK8_0 + lane];
  const float amax = warp_max(fabsf(v));
  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
  y->qs[lane] = int8_t(roundf(__fmul_rn(v, id)));
  if (lane == 0) y->d = __half_as_ushort(__float2half_rn(d));
}

// One thread per token: softmax (sum in double), then k passes picking the largest remaining
// probability, the lower index on ties; weights renormalised in slot order.
__global__ void route_kernel(float* logits, int64_t n_tokens, int64_t n_expert, int64_t k, int32_t* ids,
                             float* weights) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n_tokens) return;
  float* p = logits + t * n_expert;
  float max = p[0];
  for (int64_t i = 1; i < n_expert; ++i) max = p[i] > max ? p[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n_expert; ++i) {
    const float e = expf(p[i] - max);
    p[i] = e;
    sum += e;
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n_expert; ++i) p[i] = __fmul_rn(p[i], inv);
  int32_t* id = ids + t * k;
  float* w = weights + t * k;
  float wsum = 0.0f;
  for (int64_t s = 0; s < k; ++s) {
    int32_t best = -1;
    for (int64_t i = 0; i < n_expert; ++i) {
      bool taken = false;
      for (int64_t r = 0; r < s; ++r) taken |= id[r] == i;
      if (!taken && (best < 0 || p[i] > p[best])) best = int32_t(i);
    }
    id[s] = best;
    wsum = __fadd_rn(wsum, p[best]);
  }
  for (int64_t s = 0; s < k; ++s) w[s] = __fdiv_rn(p[id[s]], wsum);
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

__global__ void store_kv_kernel(DeviceKv kv, int64_t pos0, int64_t n_tokens, const float* k, const float* v) {
  const int64_t kv_dim = kv.n_head_kv * kv.head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tokens * kv_dim) return;
  const int64_t t = i / kv_dim, h = (i % kv_dim) / kv.head_dim, d = i % kv.head_dim;
  const int64_t at = (h * kv.capacity + pos0 + t) * kv.head_dim + d;
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

// One block per (token, query head). Shared: q [head_dim], scores [n_kv], reduction scratch.
__global__ void attention_kernel(DeviceKv kv, const float* q, int64_t pos0, int64_t n_head, float scale,
                                 float* out) {
  extern __shared__ float smem[];
  const int64_t t = blockIdx.x / n_head, h = blockIdx.x % n_head;
  const int64_t hd = kv.head_dim, kvh = h / (n_head / kv.n_head_kv), n_kv = pos0 + t + 1;
  float* qs = smem;
  float* red = qs + hd;
  float* sc = red + 32;
  const float* qh = q + (t * n_head + h) * hd;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qh[i];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  const int64_t kbase = kvh * kv.capacity * hd;
  float local_max = -INFINITY;
  for (int64_t j = warp; j < n_kv; j += n_warps) {
    float s = 0.0f;
    for (int64_t i = lane; i < hd; i += 32) s += qs[i] * kv_at(kv, kv.k, kbase + j * hd + i);
    s = warp_sum(s) * scale;
    if (lane == 0) sc[j] = s;
    local_max = fmaxf(local_max, s);
  }
  if (lane == 0) red[warp] = local_max;
  __syncthreads();
  float max = -INFINITY;
  for (int w = 0; w < n_warps; ++w) max = fmaxf(max, red[w]);
  __syncthreads();
  float local_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n_kv; j += blockDim.x) {
    const float e = expf(sc[j] - max);
    sc[j] = e;
    local_sum += e;
  }
  local_sum = warp_sum(local_sum);
  if (lane == 0) red[warp] = local_sum;
  __syncthreads();
  float sum = 0.0f;
  for (int w = 0; w < n_warps; ++w) sum += red[w];
  const float inv = 1.0f / sum;
  float* o = out + (t * n_head + h) * hd;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n_kv; ++j) acc += sc[j] * kv_at(kv, kv.v, kbase + j * hd + i);
    o[i] = acc * inv;
  }
}

}  // namespace

void embed(GgmlType type, const void* table, int64_t row_bytes, int64_t n_embd, const int32_t* tokens,
           int64_t n_tokens, float* x) {
  const int64_t n = n_tokens * n_embd;
  if (n == 0) return;
  embed_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(type, static_cast<const uint8_t*>(table), row_bytes, n_embd,
                                                         tokens, n_tokens, x);
  POPPER_CUDA_LAUNCHED();
}

void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y) {
  if (n_rows == 0) return;
  const int threads = n >= 1024 ? 256 : 64;
  rmsnorm_kernel<<<unsigned(n_rows), threads, 0, stream()>>>(x, w, n, eps, y);
  POPPER_CUDA_LAUNCHED();
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) {
  const int64_t n = n_tokens * n_heads * (head_dim / 2);
  if (n == 0) return;
  const float theta_scale = std::pow(freq_base, -2.0f / float(head_dim));  // same powf as the CPU
  rope_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(x, n_tokens, n_heads, head_dim, pos0, theta_scale);
  POPPER_CUDA_LAUNCHED();
}

void add(float* x, const float* y, int64_t n) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(x, y, n);
  POPPER_CUDA_LAUNCHED();
}

void swiglu(float* g, const float* u, int64_t n) {
  if (n == 0) return;
  swiglu_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(g, u, n);
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

void quantize_activations(const float* x, int64_t n_rows, int64_t n_cols, GgmlType t, void* out) {
  const int64_t row_bytes = activation_row_bytes(t, n_cols);
  if (n_rows == 0) return;
  if (t == GgmlType::F32) {
    POPPER_CUDA_CHECK(cudaMemcpyAsync(out, x, size_t(n_rows * row_bytes), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  const int64_t bs = t == GgmlType::Q8_K ? kQK_K : kQK8_0;
  POPPER_CHECK(n_cols % bs == 0, "activation row of ", n_cols, " is not a multiple of ", bs);
  const int64_t per_row = n_cols / bs, n_blocks = n_rows * per_row;
  auto* o = static_cast<uint8_t*>(out);
  if (t == GgmlType::Q8_K) {
    quantize_q8_k_kernel<<<blocks_for(n_blocks, 4), 128, 0, stream()>>>(x, n_blocks, per_row, row_bytes, o);
  } else {
    POPPER_CHECK(t == GgmlType::Q8_0, "activation type ", ggml_type_name(t));
    quantize_q8_0_kernel<<<blocks_for(n_blocks, 4), 128, 0, stream()>>>(x, n_blocks, per_row, row_bytes, o);
  }
  POPPER_CUDA_LAUNCHED();
}

void route_top_k(float* logits, int64_t n_tokens, int64_t n_expert, int64_t k, int32_t* ids, float* weights) {
  if (n_tokens == 0) return;
  route_kernel<<<blocks_for(n_tokens, 64), 64, 0, stream()>>>(logits, n_tokens, n_expert, k, ids, weights);
  POPPER_CUDA_LAUNCHED();
}

void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t n, float* dst) {
  if (n_rows * n == 0) return;
  gather_kernel<<<blocks_for(n_rows * n, 256), 256, 0, stream()>>>(src, rows, n_rows, n, dst);
  POPPER_CUDA_LAUNCHED();
}

void combine_experts(const float* down, const int32_t* slot_row, const float* weights, int64_t n_tokens, int64_t k,
                     int64_t n, float* out) {
  if (n_tokens * n == 0) return;
  combine_kernel<<<blocks_for(n_tokens * n, 256), 256, 0, stream()>>>(down, slot_row, weights, n_tokens, k, n, out);
  POPPER_CUDA_LAUNCHED();
}

void store_kv(const DeviceKv& kv, int64_t pos0, int64_t n_tokens, const float* k, const float* v) {
  const int64_t n = n_tokens * kv.n_head_kv * kv.head_dim;
  if (n == 0) return;
  store_kv_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(kv, pos0, n_tokens, k, v);
  POPPER_CUDA_LAUNCHED();
}

namespace {
int max_attention_smem() {
  static const int max_smem = [] {
    int v = 0;
    POPPER_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    POPPER_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v));
    return v;
  }();
  return max_smem;
}
}  // namespace

int64_t max_attention_positions(int64_t head_dim) {
  return int64_t(max_attention_smem()) / int64_t(sizeof(float)) - head_dim - 32;
}

Status attention(const DeviceKv& kv, const float* q, int64_t n_tokens, int64_t pos0, int64_t n_head, float scale,
                 float* out) {
  if (n_tokens == 0) return Status::success();
  const int max_smem = max_attention_smem();
  const size_t smem = size_t(kv.head_dim + 32 + pos0 + n_tokens) * sizeof(float);
  if (smem > size_t(max_smem)) {
    return make_error("CUDA attention: ", pos0 + n_tokens, " positions need ", smem,
                      " bytes of shared memory per block, the device allows ", max_smem);
  }
  attention_kernel<<<unsigned(n_tokens * n_head), kAttnThreads, smem, stream()>>>(kv, q, pos0, n_head, scale, out);
  POPPER_CUDA_LAUNCHED();
  return Status::success();
}

}  // namespace popper::cuda
