// Weight-matrix times activation rows: fused dequantise-and-dot kernels for Q4_K, Q5_K, Q6_K and
// Q8_0 against activations quantised exactly as the CPU quantises them (Q8_K / Q8_0), float dots
// for F32/F16/BF16 weights, and cuBLAS SGEMM for them at prefill sizes.
//
// Arithmetic contract (what makes GPU and CPU pick the same experts and tokens): every weight
// block's integer dot product is computed exactly (dp4a, int32) and turned into a float with the
// CPU's formula for that type (engine/cpu/vec_dot_scalar.cpp); only the order in which the
// per-block floats are summed differs.
//
// note: decode and small batches run one warp per output row, 4 rows per block; each lane owns
// one sub-block ("unit") of the row at a time, so lanes read consecutive bytes, and a tile of up
// to kTileTokens activation rows reuses each unpacked weight sub-block from registers. Batches
// of 32+ tokens run the shared-memory tiled kernel (k-quants) or 16-token tiles (Q8_0).
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "engine/cuda/common.cuh"
#include "engine/cuda/cuda_ops.h"

namespace popper::cuda {
namespace {

constexpr int kTileTokens = 8;
// Prefill-sized Q8_0 batches use 16-token tiles: each unpacked weight sub-block is reused twice
// as often and half as many blocks are launched (32-token tiles take ~160 registers per thread
// on sm_90, too few warps per SM). Every (row, token) result comes from the same lane sequence
// either way, so both tiles give the same bits.
constexpr int kWideTileTokens = 16;
constexpr int64_t kWideTileMinTokens = 32;
constexpr int kRowsPerBlock = 4;

__device__ __forceinline__ int load_i32(const uint8_t* p) {  // any alignment
  return int(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24));
}
__device__ __forceinline__ int load_i32_aligned(const uint8_t* p) { return *reinterpret_cast<const int*>(p); }
__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

// A unit is one sub-block of a weight block: kSubs per block of kBlock elements.
// load(): unpack the unit's weights into int8x4 words (w) and the integer scale/min (sc, m).
// dot(): integer contribution(s) of this unit against one activation block.
// block_value(): the CPU's float for one whole block from the summed integers.

struct Q4KUnit {
  static constexpr int kSubs = 8, kWords = 8, kBlockBytes = sizeof(BlockQ4K), kActBytes = sizeof(BlockQ8K);
  template <bool kQ5>
  __device__ static void load_k4(const uint8_t* blk, int j, int* w, int* sc, int* m) {
    const int g = j / 2, hi = j % 2;
    scale_min_k4(j, blk + 4, sc, m);
    const uint8_t* qs = blk + (kQ5 ? 48 : 16) + 32 * g;
    for (int i = 0; i < 8; ++i) {
      const int v = load_i32_aligned(qs + 4 * i);
      int q = (v >> (4 * hi)) & 0x0F0F0F0F;
      if (kQ5) {
        const int h = load_i32_aligned(blk + 16 + 4 * i);
        q |= ((h >> (2 * g + hi)) & 0x01010101) << 4;
      }
      w[i] = q;
    }
  }
  __device__ static void load(const uint8_t* blk, int j, int* w, int* sc, int* m) { load_k4<false>(blk, j, w, sc, m); }
  // a: the Q8_K block. Returns sc * dot in .x and m * (sum of the 32 activations) in .y.
  __device__ static int2 dot(const int* w, int sc, int m, const uint8_t* a, int j) {
    const uint8_t* qa = a + 4 + 32 * j;
    int s = 0;
    for (int i = 0; i < 8; ++i) s = __dp4a(w[i], load_i32_aligned(qa + 4 * i), s);
    const auto* bsums = reinterpret_cast<const int16_t*>(a + 4 + kQK_K);
    return make_int2(sc * s, m * (int(bsums[2 * j]) + int(bsums[2 * j + 1])));
  }
  __device__ static float block_value(const uint8_t* blk, const uint8_t* a, int2 s) {
    const float da = *reinterpret_cast<const float*>(a);
    const float d = __fmul_rn(half_bits_to_float(load_u16(blk)), da);
    const float dmin = __fmul_rn(half_bits_to_float(load_u16(blk + 2)), da);
    return __fsub_rn(__fmul_rn(d, float(s.x)), __fmul_rn(dmin, float(s.y)));
  }
};

struct Q5KUnit : Q4KUnit {
  static constexpr int kBlockBytes = sizeof(BlockQ5K);
  __device__ static void load(const uint8_t* blk, int j, int* w, int* sc, int* m) { load_k4<true>(blk, j, w, sc, m); }
};

// Q6_K: 16 units of 16 elements. Unit u: g = u / 8 (half of the block), k = u % 8 -> quarter
// qq = k / 2 and half-row hh = k % 2; elements 128g + 32qq + 16hh + [0, 16); scale scales[8g + k]
// (the CPU's part[is + 2qq] with is = hh).
struct Q6KUnit {
  static constexpr int kSubs = 16, kWords = 4, kBlockBytes = sizeof(BlockQ6K), kActBytes = sizeof(BlockQ8K);
  __device__ static void load(const uint8_t* blk, int u, int* w, int* sc, int* m) {
    const int g = u / 8, k = u % 8, qq = k / 2, hh = k % 2;
    const uint8_t* ql = blk + 64 * g + (qq & 1) * 32 + 16 * hh;
    const uint8_t* qh = blk + 128 + 32 * g + 16 * hh;
    for (int i = 0; i < 4; ++i) {
      const int lo = (load_i32(ql + 4 * i) >> (qq >= 2 ? 4 : 0)) & 0x0F0F0F0F;
      const int hi = ((load_i32(qh + 4 * i) >> (2 * qq)) & 0x03030303) << 4;
      w[i] = __vsubss4(lo | hi, 0x20202020);  // q - 32, per byte
    }
    *sc = int(int8_t(blk[192 + 8 * g + k]));
    *m = 0;
  }
  __device__ static int2 dot(const int* w, int sc, int, const uint8_t* a, int u) {
    const int g = u / 8, k = u % 8, qq = k / 2, hh = k % 2;
    const uint8_t* qa = a + 4 + 128 * g + 32 * qq + 16 * hh;
    int s = 0;
    for (int i = 0; i < 4; ++i) s = __dp4a(w[i], load_i32_aligned(qa + 4 * i), s);
    return make_int2(sc * s, 0);
  }
  __device__ static float block_value(const uint8_t* blk, const uint8_t* a, int2 s) {
    const float da = *reinterpret_cast<const float*>(a);
    return __fmul_rn(__fmul_rn(half_bits_to_float(load_u16(blk + 208)), da), float(s.x));
  }
};

struct Q80Unit {
  static constexpr int kSubs = 1, kWords = 8, kBlockBytes = sizeof(BlockQ8_0), kActBytes = sizeof(BlockQ8_0);
  __device__ static void load(const uint8_t* blk, int, int* w, int* sc, int* m) {
    for (int i = 0; i < 8; ++i) w[i] = load_i32(blk + 2 + 4 * i);
    *sc = 1;
    *m = 0;
  }
  __device__ static int2 dot(const int* w, int, int, const uint8_t* a, int) {
    int s = 0;
    for (int i = 0; i < 8; ++i) s = __dp4a(w[i], load_i32(a + 2 + 4 * i), s);
    return make_int2(s, 0);
  }
  __device__ static float block_value(const uint8_t* blk, const uint8_t* a, int2 s) {
    return __fmul_rn(float(s.x), __fmul_rn(half_bits_to_float(load_u16(blk)), half_bits_to_float(load_u16(a))));
  }
};

// Shared launch geometry: blockIdx.x -> 4 rows, blockIdx.y -> token tile, blockIdx.z -> group,
// or the matrix of a multi-matrix launch. groups == nullptr: one group (expert 0, row 0,
// n_tokens rows).
constexpr int kMaxMulti = 3;
struct MatmulArgs {
  const uint8_t* w;
  int64_t expert_stride;  // bytes between experts (grouped)
  int64_t row_bytes, n_in, n_out;
  const uint8_t* x;
  int64_t x_row_bytes;  // 0: every row reads x's first row (one token broadcast to its groups)
  const int32_t* groups;
  int64_t n_tokens;
  float* y;
  int64_t ldy;
  // Multi-matrix launch (n_multi > 0): matrix m has these instead of w, n_out, y, ldy (same type
  // and n_in; ldy = its n_out). m = blockIdx.z, or with groups blockIdx.z / n_groups_launch (the
  // group then being blockIdx.z % n_groups_launch).
  int n_multi;
  int64_t n_groups_launch;
  const uint8_t* multi_w[kMaxMulti];
  int64_t multi_n_out[kMaxMulti], multi_row_bytes[kMaxMulti];
  float* multi_y[kMaxMulti];
};

// p with the multi-matrix entry of this block swapped in.
__device__ __forceinline__ MatmulArgs this_matrix(const MatmulArgs& p) {
  if (p.n_multi == 0) return p;
  MatmulArgs q = p;
  const int z = int(p.groups != nullptr ? int64_t(blockIdx.z) / p.n_groups_launch : int64_t(blockIdx.z));
  q.w = p.multi_w[z];
  q.n_out = p.multi_n_out[z];
  q.row_bytes = p.multi_row_bytes[z];
  q.y = p.multi_y[z];
  q.ldy = p.multi_n_out[z];
  return q;
}

template <int kTile>
__device__ __forceinline__ bool group_of(const MatmulArgs& p, int64_t* w_off, int64_t* row0, int64_t* count) {
  if (p.groups == nullptr) {
    *w_off = 0;
    *row0 = 0;
    *count = p.n_tokens;
  } else {
    const int64_t group = p.n_multi > 0 ? int64_t(blockIdx.z) % p.n_groups_launch : int64_t(blockIdx.z);
    const int32_t* g = p.groups + 3 * group;
    *w_off = int64_t(g[0]) * p.expert_stride;
    *row0 = g[1];
    *count = g[2];
  }
  return int64_t(blockIdx.y) * kTile < *count;
}

template <class U, int kTile>
__global__ void __launch_bounds__(32 * kRowsPerBlock) matmul_q_kernel(MatmulArgs args) {
  const MatmulArgs p = this_matrix(args);
  int64_t w_off, row0, count;
  if (!group_of<kTile>(p, &w_off, &row0, &count)) return;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= p.n_out) return;
  const int lane = threadIdx.x % 32;
  const int64_t t0 = row0 + int64_t(blockIdx.y) * kTile;
  const int64_t left = row0 + count - t0;
  const int nt = left < kTile ? int(left) : kTile;
  const uint8_t* wrow = p.w + w_off + row * p.row_bytes;
  const int64_t n_blocks = p.n_in / (U::kSubs == 16 ? kQK_K : (U::kSubs == 1 ? kQK8_0 : kQK_K));
  const int64_t n_units = n_blocks * U::kSubs;
  float acc[kTile] = {};
  for (int64_t base = 0; base < n_units; base += 32) {
    const int64_t unit = base + lane;
    const bool live = unit < n_units;  // whole blocks are live or not together (kSubs | 32)
    const int64_t b = live ? unit / U::kSubs : 0;
    const int j = int(unit % U::kSubs);
    int w[U::kWords], sc = 0, m = 0;
    const uint8_t* blk = wrow + b * U::kBlockBytes;
    if (live) U::load(blk, j, w, &sc, &m);
    // Unrolled with a warp-uniform guard (not a break) so acc stays in registers.
#pragma unroll
    for (int t = 0; t < kTile; ++t) {
      if (t < nt) {
        const uint8_t* a = p.x + (t0 + t) * p.x_row_bytes + b * U::kActBytes;
        int2 s = live ? U::dot(w, sc, m, a, j) : make_int2(0, 0);
        for (int o = U::kSubs / 2; o > 0; o >>= 1) {  // exact integer sums within the block
          s.x += __shfl_xor_sync(0xffffffffu, s.x, o);
          s.y += __shfl_xor_sync(0xffffffffu, s.y, o);
        }
        if (live && j == 0) acc[t] += U::block_value(blk, a, s);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTile; ++t) {
    if (t < nt) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) p.y[(t0 + t) * p.ldy + row] = v;
    }
  }
}

// Prefill-sized batches of k-quant weights (Q4_K, Q5_K, Q6_K) against Q8_K activations: a
// block computes a tile of kTileRows rows x kTileCols tokens. For each 256-element weight block
// it unpacks the tile's weights into shared memory (int8, element order, with each sub-block's
// integer scale and min) and stages the tokens' Q8_K blocks beside them; each thread then forms
// a 2 x 2 corner of the tile with dp4a from shared memory. Each (row, token, block) integer sum is
// the CPU's exactly and becomes a float with the CPU's formula (Unit::block_value); the blocks'
// floats are summed in order. A sub-block "unit" j of U covers elements [j * E, j * E + E),
// E = 4 * U::kWords, and word i of Unit::load holds elements j * E + 4i .. + 3.
constexpr int kTileRows = 32, kTileCols = 32, kTiledThreads = 256;
constexpr int kTiledMinTokens = 32;  // from here on prefill goes through the tiled kernel
constexpr int kTilePitch = kQK_K + 4;  // bytes per shared row: padding spreads rows over banks
static_assert(kTilePitch % 4 == 0, "shared rows hold whole words");

template <class U>
__global__ void __launch_bounds__(kTiledThreads) matmul_tiled_kernel(MatmulArgs args) {
  constexpr int kE = 4 * U::kWords;
  const MatmulArgs p = this_matrix(args);
  int64_t w_off, row0, count;
  if (!group_of<kTileCols>(p, &w_off, &row0, &count)) return;
  const int64_t r_base = int64_t(blockIdx.x) * kTileRows;
  const int64_t t_base = row0 + int64_t(blockIdx.y) * kTileCols;  // first token (activation row)
  const int n_rows = int(min(int64_t(kTileRows), p.n_out - r_base));
  const int n_cols = int(min(int64_t(kTileCols), row0 + count - t_base));
  // Declared as int so the int8 rows are 4-byte aligned for the word loads and stores below.
  __shared__ int w_words[kTileRows * kTilePitch / 4];
  __shared__ int a_words[kTileCols * kTilePitch / 4];
  int8_t* const w_sh = reinterpret_cast<int8_t*>(w_words);
  int8_t* const a_sh = reinterpret_cast<int8_t*>(a_words);
  __shared__ int sc_sh[kTileRows * U::kSubs];
  __shared__ int m_sh[kTileRows * U::kSubs];
  __shared__ int bsum_sh[kTileCols * (kQK_K / 16)];
  const int tid = threadIdx.x;
  const int r0 = (tid % (kTileRows / 2)) * 2, c0 = (tid / (kTileRows / 2)) * 2;  // this thread's corner
  float acc[2][2] = {};
  const int64_t n_blocks = p.n_in / kQK_K;
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (int u = tid; u < kTileRows * U::kSubs; u += kTiledThreads) {  // weights: one unit each
      const int r = u / U::kSubs, j = u % U::kSubs;
      int w[U::kWords] = {}, sc = 0, m = 0;
      if (r < n_rows) U::load(p.w + w_off + (r_base + r) * p.row_bytes + b * U::kBlockBytes, j, w, &sc, &m);
      for (int i = 0; i < U::kWords; ++i) *reinterpret_cast<int*>(w_sh + r * kTilePitch + j * kE + 4 * i) = w[i];
      sc_sh[r * U::kSubs + j] = sc;
      m_sh[r * U::kSubs + j] = m;
    }
    for (int q = tid; q < kTileCols * (kQK_K / 4); q += kTiledThreads) {  // activations' quants
      const int c = q / (kQK_K / 4), i = q % (kQK_K / 4);
      int v = 0;
      if (c < n_cols) v = load_i32_aligned(p.x + (t_base + c) * p.x_row_bytes + b * int64_t(sizeof(BlockQ8K)) + 4 + 4 * i);
      *reinterpret_cast<int*>(a_sh + c * kTilePitch + 4 * i) = v;
    }
    for (int q = tid; q < kTileCols * (kQK_K / 16); q += kTiledThreads) {  // and their 16-sums
      const int c = q / (kQK_K / 16), i = q % (kQK_K / 16);
      int v = 0;
      if (c < n_cols) {
        const uint8_t* a = p.x + (t_base + c) * p.x_row_bytes + b * int64_t(sizeof(BlockQ8K));
        v = reinterpret_cast<const int16_t*>(a + 4 + kQK_K)[i];
      }
      bsum_sh[c * (kQK_K / 16) + i] = v;
    }
    __syncthreads();
    for (int dr = 0; dr < 2; ++dr) {
      const int r = r0 + dr;
      if (r >= n_rows) continue;
      const uint8_t* blk = p.w + w_off + (r_base + r) * p.row_bytes + b * U::kBlockBytes;
      for (int dc = 0; dc < 2; ++dc) {
        const int c = c0 + dc;
        if (c >= n_cols) continue;
        int sx = 0, sy = 0;
        for (int j = 0; j < U::kSubs; ++j) {
          int dot = 0;
          for (int i = 0; i < U::kWords; ++i) {
            dot = __dp4a(*reinterpret_cast<const int*>(w_sh + r * kTilePitch + j * kE + 4 * i),
                         *reinterpret_cast<const int*>(a_sh + c * kTilePitch + j * kE + 4 * i), dot);
          }
          int bsum = 0;
          for (int e = 0; e < kE / 16; ++e) bsum += bsum_sh[c * (kQK_K / 16) + j * (kE / 16) + e];
          sx += sc_sh[r * U::kSubs + j] * dot;
          sy += m_sh[r * U::kSubs + j] * bsum;
        }
        const uint8_t* a = p.x + (t_base + c) * p.x_row_bytes + b * int64_t(sizeof(BlockQ8K));
        acc[dr][dc] += U::block_value(blk, a, make_int2(sx, sy));
      }
    }
    __syncthreads();  // the next block overwrites the tiles
  }
  for (int dr = 0; dr < 2; ++dr) {
    for (int dc = 0; dc < 2; ++dc) {
      const int r = r0 + dr, c = c0 + dc;
      if (r < n_rows && c < n_cols) p.y[(t_base + c) * p.ldy + r_base + r] = acc[dr][dc];
    }
  }
}

// One weight element of a float type as f32.
template <GgmlType kType>
__device__ __forceinline__ float float_weight(const uint8_t* row, int64_t i) {
  if constexpr (kType == GgmlType::F16) return __half2float(reinterpret_cast<const __half*>(row)[i]);
  if constexpr (kType == GgmlType::BF16) {
    return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[i]) << 16);
  }
  return reinterpret_cast<const float*>(row)[i];
}

// F32 / F16 / BF16 weights with f32 activations.
template <GgmlType kType>
__global__ void __launch_bounds__(32 * kRowsPerBlock) matmul_f_kernel(MatmulArgs args) {
  const MatmulArgs p = this_matrix(args);
  int64_t w_off, row0, count;
  if (!group_of<kTileTokens>(p, &w_off, &row0, &count)) return;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= p.n_out) return;
  const int lane = threadIdx.x % 32;
  const int64_t t0 = row0 + int64_t(blockIdx.y) * kTileTokens;
  const int64_t left = row0 + count - t0;
  const int nt = left < kTileTokens ? int(left) : kTileTokens;
  const uint8_t* wrow = p.w + w_off + row * p.row_bytes;
  float acc[kTileTokens] = {};
  for (int64_t i = lane; i < p.n_in; i += 32) {
    const float wv = float_weight<kType>(wrow, i);
#pragma unroll
    for (int t = 0; t < kTileTokens; ++t) {
      if (t < nt) acc[t] += wv * reinterpret_cast<const float*>(p.x + (t0 + t) * p.x_row_bytes)[i];
    }
  }
#pragma unroll
  for (int t = 0; t < kTileTokens; ++t) {
    if (t < nt) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) p.y[(t0 + t) * p.ldy + row] = v;
    }
  }
}

template <GgmlType kType>
__global__ void to_f32_kernel(const uint8_t* src, float* dst, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = float_weight<kType>(src, i);
}

// cuBLAS from this many tokens on (F32/F16/BF16 weights): below, the fused kernel's single pass over
// the weights wins.
constexpr int64_t kCublasMinTokens = 16;

// POPPER_CUDA_TILED=0 sends prefill through the warp-per-row kernels instead (for comparison).
bool tiled_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("POPPER_CUDA_TILED");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}

template <int kTile>
dim3 grid_for(const MatmulArgs& p, int64_t n_groups, int64_t max_count) {
  return dim3(unsigned((p.n_out + kRowsPerBlock - 1) / kRowsPerBlock), unsigned((max_count + kTile - 1) / kTile),
              unsigned(n_groups));
}

template <class U>
void launch_q(const MatmulArgs& p, int64_t n_groups, int64_t max_count) {
  const dim3 block(32 * kRowsPerBlock);
  if constexpr (U::kActBytes == sizeof(BlockQ8K)) {
    if (max_count >= kTiledMinTokens && tiled_enabled()) {
      const dim3 grid(unsigned((p.n_out + kTileRows - 1) / kTileRows), unsigned((max_count + kTileCols - 1) / kTileCols),
                      unsigned(n_groups));
      POPPER_LAUNCH(grid, kTiledThreads, matmul_tiled_kernel<U>)(p);
      return;
    }
  }
  if (max_count >= kWideTileMinTokens) {
    POPPER_LAUNCH(grid_for<kWideTileTokens>(p, n_groups, max_count), block, matmul_q_kernel<U, kWideTileTokens>)(p);
  } else {
    POPPER_LAUNCH(grid_for<kTileTokens>(p, n_groups, max_count), block, matmul_q_kernel<U, kTileTokens>)(p);
  }
}

void launch(GgmlType type, const MatmulArgs& p, int64_t n_groups, int64_t max_count) {
  const dim3 grid = grid_for<kTileTokens>(p, n_groups, max_count);
  const dim3 block(32 * kRowsPerBlock);
  switch (type) {
    case GgmlType::Q4_K:
      launch_q<Q4KUnit>(p, n_groups, max_count);
      break;
    case GgmlType::Q5_K:
      launch_q<Q5KUnit>(p, n_groups, max_count);
      break;
    case GgmlType::Q6_K:
      launch_q<Q6KUnit>(p, n_groups, max_count);
      break;
    case GgmlType::Q8_0:
      launch_q<Q80Unit>(p, n_groups, max_count);
      break;
    case GgmlType::F32:
      POPPER_LAUNCH(grid, block, matmul_f_kernel<GgmlType::F32>)(p);
      break;
    case GgmlType::F16:
      POPPER_LAUNCH(grid, block, matmul_f_kernel<GgmlType::F16>)(p);
      break;
    case GgmlType::BF16:
      POPPER_LAUNCH(grid, block, matmul_f_kernel<GgmlType::BF16>)(p);
      break;
    default:
      POPPER_CHECK(false, "no CUDA matmul for ", ggml_type_name(type));
  }
  POPPER_CUDA_LAUNCHED();
}

}  // namespace

GgmlType vec_dot_type(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return GgmlType::Q8_K;
    case GgmlType::Q8_0:
      return GgmlType::Q8_0;
    default:
      return GgmlType::F32;
  }
}

bool supports_weight_type(GgmlType t) {
  return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K || t == GgmlType::Q8_0 ||
         t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

size_t matmul_scratch_bytes(const DeviceMatrix& w, int64_t n_tokens) {
  const bool half = w.type == GgmlType::F16 || w.type == GgmlType::BF16;
  if (half && n_tokens >= kCublasMinTokens) return size_t(w.n_in * w.n_out) * sizeof(float);
  return 0;
}

void matmul(const DeviceMatrix& w, const void* x, int64_t n_tokens, float* y, int64_t ldy, void* scratch,
            bool allow_cublas) {
  if (n_tokens == 0) return;
  const bool dense = w.type == GgmlType::F32 || w.type == GgmlType::F16 || w.type == GgmlType::BF16;
  if (dense && allow_cublas && n_tokens >= kCublasMinTokens) {
    // Row-major W [n_out][n_in] is column-major n_in x n_out: y^T = W^T... i.e. C = A^T B.
    const float* a = static_cast<const float*>(w.data);
    if (w.type != GgmlType::F32) {  // widen 16-bit weights to f32 once per call: plain FP32 SGEMM after
      const int64_t n = w.n_in * w.n_out;
      const auto* src = static_cast<const uint8_t*>(w.data);
      auto* dst = static_cast<float*>(scratch);
      if (w.type == GgmlType::F16) {
        POPPER_LAUNCH(blocks_for(n, 256), 256, to_f32_kernel<GgmlType::F16>)(src, dst, n);
      } else {
        POPPER_LAUNCH(blocks_for(n, 256), 256, to_f32_kernel<GgmlType::BF16>)(src, dst, n);
      }
      POPPER_CUDA_LAUNCHED();
      a = dst;
    }
    const float alpha = 1.0f, beta = 0.0f;
    POPPER_CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, int(w.n_out), int(n_tokens), int(w.n_in),
                                    &alpha, a, int(w.n_in), static_cast<const float*>(x), int(w.n_in), &beta, y,
                                    int(ldy)));
    return;
  }
  // gridDim.y counts token tiles and stops at 65535: longer batches go out in chunks.
  const int64_t x_row_bytes = activation_row_bytes(vec_dot_type(w.type), w.n_in);
  constexpr int64_t kMaxTokensPerLaunch = int64_t(65535) * kTileTokens;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kMaxTokensPerLaunch) {
    const int64_t nt = std::min(kMaxTokensPerLaunch, n_tokens - t0);
    MatmulArgs p{static_cast<const uint8_t*>(w.data), 0, w.row_bytes, w.n_in, w.n_out,
                 static_cast<const uint8_t*>(x) + t0 * x_row_bytes, x_row_bytes, nullptr, nt, y + t0 * ldy, ldy};
    launch(w.type, p, 1, nt);
  }
}

void matmul_grouped(const DeviceMatrix& all, int64_t n_out, const void* x, const int32_t* groups, int64_t n_groups,
                    int64_t max_count, float* y, bool broadcast_x) {
  if (n_groups == 0) return;
  const int64_t x_row_bytes = broadcast_x ? 0 : activation_row_bytes(vec_dot_type(all.type), all.n_in);
  MatmulArgs p{static_cast<const uint8_t*>(all.data), n_out * all.row_bytes, all.row_bytes, all.n_in, n_out,
               static_cast<const uint8_t*>(x), x_row_bytes, groups, 0, y, n_out};
  launch(all.type, p, n_groups, max_count);
}

void matmul_grouped_pair(const DeviceMatrix& a, const DeviceMatrix& b, int64_t n_out, const void* x,
                         const int32_t* groups, int64_t n_groups, int64_t max_count, float* ya, float* yb,
                         bool broadcast_x) {
  POPPER_CHECK(a.type == b.type && a.n_in == b.n_in && a.row_bytes == b.row_bytes, "matmul_grouped_pair: ",
               ggml_type_name(a.type), " and ", ggml_type_name(b.type), " differ");
  if (n_groups == 0) return;
  const int64_t x_row_bytes = broadcast_x ? 0 : activation_row_bytes(vec_dot_type(a.type), a.n_in);
  MatmulArgs p{nullptr, n_out * a.row_bytes, a.row_bytes, a.n_in, n_out, static_cast<const uint8_t*>(x), x_row_bytes,
               groups, 0, nullptr, n_out};
  p.n_multi = 2;
  p.n_groups_launch = n_groups;
  p.multi_w[0] = static_cast<const uint8_t*>(a.data);
  p.multi_w[1] = static_cast<const uint8_t*>(b.data);
  p.multi_n_out[0] = p.multi_n_out[1] = n_out;
  p.multi_row_bytes[0] = p.multi_row_bytes[1] = a.row_bytes;
  p.multi_y[0] = ya;
  p.multi_y[1] = yb;
  launch(a.type, p, 2 * n_groups, max_count);
}

bool matmul_multi_fits(const DeviceMatrix* w, int n, int64_t n_tokens) {
  if (n < 1 || n > kMaxMulti) return false;
  for (int i = 0; i < n; ++i) {
    if (w[i].type != w[0].type || w[i].n_in != w[0].n_in) return false;
  }
  const bool dense = w[0].type == GgmlType::F32 || w[0].type == GgmlType::F16 || w[0].type == GgmlType::BF16;
  return !(dense && n_tokens >= kCublasMinTokens);
}

void matmul_multi(const DeviceMatrix* w, int n, const void* x, int64_t n_tokens, float* const* y) {
  POPPER_CHECK(matmul_multi_fits(w, n, n_tokens), "matmul_multi: ", n, " matrices do not share a kernel");
  if (n_tokens == 0) return;
  MatmulArgs p{nullptr, 0, 0, w[0].n_in, 0,
               static_cast<const uint8_t*>(x), activation_row_bytes(vec_dot_type(w[0].type), w[0].n_in), nullptr,
               n_tokens, nullptr, 0};
  p.n_multi = n;
  int64_t max_out = 0;
  for (int i = 0; i < n; ++i) {
    p.multi_w[i] = static_cast<const uint8_t*>(w[i].data);
    p.multi_n_out[i] = w[i].n_out;
    p.multi_row_bytes[i] = w[i].row_bytes;
    p.multi_y[i] = y[i];
    max_out = std::max(max_out, w[i].n_out);
  }
  p.n_out = max_out;  // sizes the grid; each matrix's blocks past its own rows exit
  launch(w[0].type, p, n, n_tokens);
}

}  // namespace popper::cuda
