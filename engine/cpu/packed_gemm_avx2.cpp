// AVX2 kernels on the x8 layouts (repack.h): 8 weight rows times up to kTile activation rows per
// call, each 32-bit lane one weight row. Per 4 weights: one activation broadcast (a load, no
// shuffle) and one maddubs for all 8 rows; per sub-block one madd applies the 8 rows' scales.
//
// Bit-exact with the scalar reference (vec_dot_scalar.cpp) row by row: the integer sums are
// exact, and the float steps per block are the reference's, in its order, one lane per row
// (this file is compiled with -ffp-contract=off so no multiply-add is fused behind our back).
//
// int16 headroom of the maddubs sums (activations are Q8_K/Q8_0, |a| <= 127):
//   Q4_K levels <= 15: 8 maddubs (a 32-element sub-block) <= 8 * 2 * 15 * 127 = 30480;
//   Q5_K levels <= 31: 4 maddubs <= 31496;  Q6_K levels <= 63: 2 maddubs <= 32004.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "engine/core/fp16.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/repack.h"

namespace popper::cpu::avx2 {
namespace {

// Activation rows per tile: with 8 rows per lane-vector, 4 tokens keep the accumulators, the
// unpacked weights and the constants within the 16 ymm registers.
constexpr int kTile = 4;

// Prefetch distance for the weight stream of a decode (one token: the stream is the bottleneck).
constexpr int kPrefetchBytes = 2048;

inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m256i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
inline __m128i load64(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }
inline __m256 load_fp16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <int kBytes>
inline void prefetch_block(const void* p) {
  const char* c = static_cast<const char*>(p) + kPrefetchBytes;
  for (int off = 0; off < kBytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// 8 unsigned bytes (one per row) at p -> int16 lanes 2r, 2r+1 = byte r: a per-row factor for
// madd. One shuffle of the bytes broadcast to both 128-bit lanes (the low lane takes rows 0..3,
// the high lane rows 4..7; -128 zeroes the high byte), where an unpack and a widening took two.
inline __m256i row_factor_u8(const uint8_t* p) {
  const __m256i dup =
      _mm256_setr_epi8(0, -128, 0, -128, 1, -128, 1, -128, 2, -128, 2, -128, 3, -128, 3, -128, 4, -128, 4,
                       -128, 5, -128, 5, -128, 6, -128, 6, -128, 7, -128, 7, -128);
  int64_t bytes8;
  std::memcpy(&bytes8, p, 8);
  return _mm256_shuffle_epi8(_mm256_set1_epi64x(bytes8), dup);
}
inline __m256i row_factor_i8(__m128i bytes8) {
  return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(bytes8, bytes8));
}
// Two rows of 8 bytes a, b -> int16 lanes 2r, 2r+1 = a[r], b[r]: a pair of per-row factors.
inline __m256i row_pair_u8(__m128i a, __m128i b) { return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)); }
inline __m256i row_pair_i8(__m128i a, __m128i b) { return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b)); }

// The first of the 4 elements that unpacking step s (0..7) of a 32-element chunk holds: steps
// 0..3 are the low nibbles (elements 4s..4s+3), 4..7 the high nibbles (elements 16 + 4(s-4)..).
constexpr int step_offset(int s) { return s < 4 ? 4 * s : 16 + 4 * (s - 4); }

// Decodes the x8 scale fields of a Q4_K/Q5_K packed block into sc[j * 8 + r], m[j * 8 + r].
inline void decode_k4_scales(const uint8_t* scales_lo, const uint8_t* scales_hi, uint8_t* sc, uint8_t* m) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
  const __m256i lo0 = loadu(scales_lo), lo1 = loadu(scales_lo + 32), hi = loadu(scales_hi);
  auto bits = [&](__m256i v, int shift) { return _mm256_and_si256(_mm256_srli_epi16(v, shift), m2); };
  auto up4 = [](__m256i v) { return _mm256_slli_epi16(v, 4); };
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sc),
                      _mm256_or_si256(_mm256_and_si256(lo0, m4), up4(bits(hi, 0))));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sc + 32),
                      _mm256_or_si256(_mm256_and_si256(lo1, m4), up4(bits(hi, 4))));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(m),
                      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo0, 4), m4), up4(bits(hi, 2))));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + 32),
                      _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo1, 4), m4), up4(bits(hi, 6))));
}

// sum_j m[j][r] * (bsums[2j] + bsums[2j+1]) for the 8 rows (int32 lane r): the min term.
inline __m256i k4_min_term(const uint8_t* m, const int16_t* bsums) {
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8));
  alignas(16) int32_t pairs[4];  // int16 (s_2p, s_2p+1) per p: sub-block sums of the activations
  _mm_store_si128(reinterpret_cast<__m128i*>(pairs), _mm_hadd_epi16(b0, b1));
  __m256i sum = _mm256_setzero_si256();
  for (int p = 0; p < 4; ++p) {
    const __m256i mp = row_pair_u8(load64(m + 16 * p), load64(m + 16 * p + 8));
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(mp, _mm256_set1_epi32(pairs[p])));
  }
  return sum;
}

// y += 8 lanes, stored to 8 rows of one output row.
inline void store8(float* y, __m256 v) { _mm256_storeu_ps(y, v); }

// ---- Q4_K x8 and Q5_K x8 ---------------------------------------------------------------------
// One kernel for both: Q5_K adds the fifth bit from qh and, with levels up to 31, folds its int16
// sums into int32 every 4 maddubs instead of every 8.

template <int NT, class Block>
void tile_k4_family(int64_t nb, const Block* w, const BlockQ8K* const* y, float* const* out) {
  constexpr bool kFifthBit = std::is_same_v<Block, BlockQ5Kx8>;
  constexpr int kStepsPerSum = kFifthBit ? 4 : 8;  // maddubs per int16 sum
  const __m256i m4 = _mm256_set1_epi8(0xF), bit4 = _mm256_set1_epi8(0x10);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  alignas(32) uint8_t sc[64], m[64];
  for (int64_t i = 0; i < nb; ++i) {
    const Block& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(Block)>(&b);
    decode_k4_scales(b.scales_lo, b.scales_hi, sc, m);
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      // The sub-block's 8 unpacked vectors first, then token by token: the unpacking is shared
      // and each token needs one int16 accumulator (GCC keeps it all in registers this way).
      const __m256i scale = row_factor_u8(sc + 8 * j);
      __m256i wv[8];
      for (int q = 0; q < 4; ++q) {
        const __m256i v = loadu(b.qs + 128 * j + 32 * q);
        wv[q] = _mm256_and_si256(v, m4);
        wv[q + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      }
      if constexpr (kFifthBit) {
        // Bit s of each qh byte moved to bit 4 in one shift (16-bit lanes: the mask drops what
        // crosses from the other byte), then or-ed in.
        const __m256i h = loadu(b.qh + 32 * j);
        for (int s = 0; s < 8; ++s) {
          const __m256i at4 = s < 4 ? _mm256_slli_epi16(h, 4 - s) : s > 4 ? _mm256_srli_epi16(h, s - 4) : h;
          wv[s] = _mm256_or_si256(wv[s], _mm256_and_si256(at4, bit4));
        }
      }
      for (int t = 0; t < NT; ++t) {
        const int8_t* a = y[t][i].qs + 32 * j;
        for (int s0 = 0; s0 < 8; s0 += kStepsPerSum) {
          __m256i s16 = _mm256_setzero_si256();
          for (int s = s0; s < s0 + kStepsPerSum; ++s) {
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(wv[s], bcast32(a + step_offset(s))));
          }
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16, scale));
        }
      }
    }
    const __m256 xd = load_fp16x8(b.d), xdmin = load_fp16x8(b.dmin);
    for (int t = 0; t < NT; ++t) {
      // The reference: sum += d * sumi - dmin * min_term, d = x.d * y.d, dmin = x.dmin * y.d.
      const __m256 yd = _mm256_set1_ps(y[t][i].d);
      const __m256 mins = _mm256_cvtepi32_ps(k4_min_term(m, y[t][i].bsums));
      const __m256 part = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(xd, yd), _mm256_cvtepi32_ps(isum[t])),
                                        _mm256_mul_ps(_mm256_mul_ps(xdmin, yd), mins));
      acc[t] = _mm256_add_ps(acc[t], part);
    }
  }
  for (int t = 0; t < NT; ++t) store8(out[t], acc[t]);
}

// ---- Q6_K x8 -----------------------------------------------------------------------------------

// Bits (2q, 2q + 1) of every byte of h moved to bits 4 and 5, the rest cleared: one 16-bit shift
// and the mask m30 = 0x30 per byte (a bit that crosses into the neighbouring byte lands below bit 4
// or above bit 5, which the mask clears), where a shift, a mask and a shift took three.
inline __m256i high_bits_at_4(__m256i h, int q, __m256i m30) {
  switch (q) {
    case 0:
      return _mm256_and_si256(_mm256_slli_epi16(h, 4), m30);
    case 1:
      return _mm256_and_si256(_mm256_slli_epi16(h, 2), m30);
    case 2:
      return _mm256_and_si256(h, m30);
    default:
      return _mm256_and_si256(_mm256_srli_epi16(h, 2), m30);
  }
}

// The levels + 32 of unpacking step s (0..7) of a chunk: the low (s < 4) or high nibbles of the
// chunk's vector V_(s % 4) at ql, with their 2 high bits from field s % 4 of h0 (s < 4) or h1.
inline __m256i q6_level(const uint8_t* ql, __m256i h0, __m256i h1, int s, __m256i m4, __m256i m30) {
  const __m256i v = loadu(ql + 32 * (s % 4));
  const __m256i nibbles = s < 4 ? _mm256_and_si256(v, m4) : _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  return _mm256_or_si256(nibbles, high_bits_at_4(s < 4 ? h0 : h1, s % 4, m30));
}

template <int NT>
void tile_q6_k(int64_t nb, const BlockQ6Kx8* w, const BlockQ8K* const* y, float* const* out) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ6Kx8& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(BlockQ6Kx8)>(&b);
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) {
      // 32 * sum_k sc_k * bsums_k: the stored levels are q + 32; subtracted once per block.
      __m256i off = _mm256_setzero_si256();
      for (int p = 0; p < 8; ++p) {
        const __m256i sp = row_pair_i8(load64(b.scales + 16 * p), load64(b.scales + 16 * p + 8));
        off = _mm256_add_epi32(off, _mm256_madd_epi16(sp, bcast32(y[t][i].bsums + 2 * p)));
      }
      isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    }
    for (int c = 0; c < 8; ++c) {
      const uint8_t* ql = b.ql + 128 * c;
      const __m256i h0 = loadu(b.qh + 64 * c), h1 = loadu(b.qh + 64 * c + 32);
      // Steps 0..3 are sub-block 2c, steps 4..7 sub-block 2c + 1; 2 maddubs per int16 sum.
      const __m256i sc_a = row_factor_i8(load64(b.scales + 16 * c));
      const __m256i sc_b = row_factor_i8(load64(b.scales + 16 * c + 8));
      if constexpr (NT == 1) {
        // One token (a decode step): each level vector serves one maddubs, so it is made where it
        // is used. Holding all eight, as the token loop below must, spills registers (llvm-mca,
        // Zen 3: 188 -> 172 cycles a block).
        const int8_t* a = y[0][i].qs + 32 * c;
        for (int s0 = 0; s0 < 8; s0 += 2) {
          const __m256i s16 = _mm256_add_epi16(
              _mm256_maddubs_epi16(q6_level(ql, h0, h1, s0, m4, m30), bcast32(a + step_offset(s0))),
              _mm256_maddubs_epi16(q6_level(ql, h0, h1, s0 + 1, m4, m30), bcast32(a + step_offset(s0 + 1))));
          isum[0] = _mm256_add_epi32(isum[0], _mm256_madd_epi16(s16, s0 < 4 ? sc_a : sc_b));
        }
        continue;
      }
      __m256i wv[8];
      for (int s0 = 0; s0 < 8; ++s0) wv[s0] = q6_level(ql, h0, h1, s0, m4, m30);
      for (int t = 0; t < NT; ++t) {
        const int8_t* a = y[t][i].qs + 32 * c;
        for (int s0 = 0; s0 < 8; s0 += 2) {
          const __m256i s16 =
              _mm256_add_epi16(_mm256_maddubs_epi16(wv[s0], bcast32(a + step_offset(s0))),
                               _mm256_maddubs_epi16(wv[s0 + 1], bcast32(a + step_offset(s0 + 1))));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16, s0 < 4 ? sc_a : sc_b));
        }
      }
    }
    const __m256 xd = load_fp16x8(b.d);
    for (int t = 0; t < NT; ++t) {
      // The reference: sum += x.d * y.d * sumi.
      const __m256 d = _mm256_mul_ps(xd, _mm256_set1_ps(y[t][i].d));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum[t])));
    }
  }
  for (int t = 0; t < NT; ++t) store8(out[t], acc[t]);
}

// ---- Q8_0 x8 -----------------------------------------------------------------------------------

template <int NT>
void tile_q8_0(int64_t nb, const BlockQ8_0x8* w, const BlockQ8_0* const* y, float* const* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ8_0x8& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(BlockQ8_0x8)>(&b);
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      const __m256i v = loadu(b.qs + 32 * s);
      const __m256i av = _mm256_sign_epi8(v, v);  // |w| (unsigned for maddubs; -128 reads as 128)
      for (int t = 0; t < NT; ++t) {
        const __m256i a = _mm256_sign_epi8(bcast32(y[t][i].qs + 4 * s), v);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(av, a), ones));
      }
    }
    const __m256 xd = load_fp16x8(b.d);
    for (int t = 0; t < NT; ++t) {
      // The reference: sum += sumi * (x.d * y.d).
      const __m256 d = _mm256_mul_ps(xd, _mm256_set1_ps(fp16_to_f32(y[t][i].d)));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(isum[t]), d));
    }
  }
  for (int t = 0; t < NT; ++t) store8(out[t], acc[t]);
}

// Runs tile<NT> over every group and token tile: for each 8-row group (in L1) the token tiles
// stream past it, so a prefill reads each weight byte from memory once.
template <class WBlock, class ABlock, template <int> class Tile>
void gemm_groups(int64_t n, int64_t block_size, const uint8_t* w, int64_t group_bytes, int64_t n_groups,
                 const uint8_t* a, int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  const int64_t nb = n / block_size;
  for (int64_t g = 0; g < n_groups; ++g) {
    const auto* wg = reinterpret_cast<const WBlock*>(w + g * group_bytes);
    int64_t t = 0;
    auto run = [&](auto nt) {
      constexpr int NT = decltype(nt)::value;
      const ABlock* rows[NT];
      float* outs[NT];
      for (int k = 0; k < NT; ++k) {
        rows[k] = reinterpret_cast<const ABlock*>(a + (t + k) * a_stride);
        outs[k] = y + (t + k) * ldy + 8 * g;
      }
      Tile<NT>::run(nb, wg, rows, outs);
      t += NT;
    };
    for (; t + kTile <= n_tokens;) run(std::integral_constant<int, kTile>{});
    switch (n_tokens - t) {
      case 3:
        run(std::integral_constant<int, 3>{});
        break;
      case 2:
        run(std::integral_constant<int, 2>{});
        break;
      case 1:
        run(std::integral_constant<int, 1>{});
        break;
      default:
        break;
    }
  }
}

template <int NT>
struct TileQ4K {
  static void run(int64_t nb, const BlockQ4Kx8* w, const BlockQ8K* const* y, float* const* o) {
    tile_k4_family<NT>(nb, w, y, o);
  }
};
template <int NT>
struct TileQ5K {
  static void run(int64_t nb, const BlockQ5Kx8* w, const BlockQ8K* const* y, float* const* o) {
    tile_k4_family<NT>(nb, w, y, o);
  }
};
template <int NT>
struct TileQ6K {
  static void run(int64_t nb, const BlockQ6Kx8* w, const BlockQ8K* const* y, float* const* o) {
    tile_q6_k<NT>(nb, w, y, o);
  }
};
template <int NT>
struct TileQ8_0 {
  static void run(int64_t nb, const BlockQ8_0x8* w, const BlockQ8_0* const* y, float* const* o) {
    tile_q8_0<NT>(nb, w, y, o);
  }
};

}  // namespace

void packed_gemm_q4_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  gemm_groups<BlockQ4Kx8, BlockQ8K, TileQ4K>(n, kQK_K, w, group_bytes, n_groups, a, a_stride, n_tokens, y,
                                             ldy);
}
void packed_gemm_q5_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  gemm_groups<BlockQ5Kx8, BlockQ8K, TileQ5K>(n, kQK_K, w, group_bytes, n_groups, a, a_stride, n_tokens, y,
                                             ldy);
}
void packed_gemm_q6_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  gemm_groups<BlockQ6Kx8, BlockQ8K, TileQ6K>(n, kQK_K, w, group_bytes, n_groups, a, a_stride, n_tokens, y,
                                             ldy);
}
void packed_gemm_q8_0(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  gemm_groups<BlockQ8_0x8, BlockQ8_0, TileQ8_0>(n, kQK8_0, w, group_bytes, n_groups, a, a_stride, n_tokens, y,
                                                ldy);
}

}  // namespace popper::cpu::avx2
