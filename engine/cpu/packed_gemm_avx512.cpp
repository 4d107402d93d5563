// AVX-512 (F, BW, VL, VNNI) kernels on the x8 layouts (repack.h), the same algorithm as
// packed_gemm_avx2.cpp on 512-bit vectors: the two 32-byte halves of a zmm are two consecutive
// unpacking steps of the same 8 rows, so one 64-byte load, one maddubs and one permute of the
// activations (4 bytes per half) do the work of two AVX2 steps, and VNNI's dpwssd applies the
// rows' scales and accumulates in one instruction. At the end of a block the halves fold (int32)
// into the 8 row lanes, and the float epilogue is AVX2's, op for op.
//
// Bit-exact with the scalar reference row by row, as the AVX2 kernels: the integer sums are
// exact and the float steps are the reference's (compiled with -ffp-contract=off). int16 headroom
// per lane: each lane sums only its own half's steps, so Q4_K folds after 4 zmm maddubs (8 steps
// split 4 + 4: <= 15240), Q5_K likewise (<= 31496), Q6_K after 2 (<= 32004).
//
// One-token calls (decode) take the activation row pre-expanded: every chunk's four step pairs
// permuted once per call into 64-byte vectors (expand_q8k), so the inner loop loads them where it
// would permute, on the shuffle port the unpacking also needs, once per 8 rows. The row is reused by
// every 8-row group of the call (32 and more in a decode), and its expansion (8x the bytes: 16 KiB
// for 2048 columns) stays in L1/L2.
//
// This machine class may not be the one the code is built on: a CPU without these features never
// reaches here (packed_matmul.cpp dispatches on cpu_features() and checks the kernels once against
// the scalar reference before trusting them).
// GCC 12's AVX-512 intrinsics pass _mm*_undefined_*() as the unused merge operand of masked
// builtins (extracti64x4, permutexvar, ...), which -Wmaybe-uninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/repack.h"

namespace popper::cpu::avx512 {
namespace {

constexpr int kTile = 4;
constexpr int kPrefetchBytes = 2048;

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
inline __m128i load64(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }
inline __m256 load_fp16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <int kBytes>
inline void prefetch_block(const void* p) {
  const char* c = static_cast<const char*>(p) + kPrefetchBytes;
  for (int off = 0; off < kBytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// Lane-index vectors: halves = dwords (s, s + 1) of a 32-byte activation chunk, s = 0, 2, 4, 6.
inline __m512i pair_index(int s) {
  return _mm512_set_epi32(s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s + 1, s, s, s, s, s, s, s, s);
}
// The 32 activation bytes of a chunk, each half of the result one step's 4 bytes to all 8 lanes.
inline __m512i step_pair(__m512i chunk, __m512i index) { return _mm512_permutexvar_epi32(index, chunk); }

// A Q8_K row's chunks, each as its four step pairs: ex[(i * 8 + c) * 4 + p] =
// step_pair(chunk c of block i, pair_index(2p)).
void expand_q8k(int64_t nb, const BlockQ8K* y, __m512i* ex) {
  const __m512i idx[4] = {pair_index(0), pair_index(2), pair_index(4), pair_index(6)};
  for (int64_t i = 0; i < nb; ++i) {
    for (int c = 0; c < 8; ++c) {
      const __m512i chunk = _mm512_zextsi256_si512(loadu256(y[i].qs + 32 * c));
      for (int p = 0; p < 4; ++p) _mm512_store_si512(ex + (i * 8 + c) * 4 + p, step_pair(chunk, idx[p]));
    }
  }
}

// Token t's four step-pair vectors of chunk c of block i: loaded from the expanded row when the
// tile has one token, else permuted from the activation block.
template <int NT>
inline void step_pairs(const BlockQ8K* const* y, const __m512i* ex, const __m512i* idx, int t, int64_t i, int c,
                       __m512i* a) {
  if constexpr (NT == 1) {
    for (int p = 0; p < 4; ++p) a[p] = _mm512_load_si512(ex + (i * 8 + c) * 4 + p);
  } else {
    const __m512i chunk = _mm512_zextsi256_si512(loadu256(y[t][i].qs + 32 * c));
    for (int p = 0; p < 4; ++p) a[p] = step_pair(chunk, idx[p]);
  }
}

// int16 lanes 2r, 2r+1 (both halves) = factor of row r, from 8 bytes.
inline __m512i row_factor_u8(__m128i bytes8) {
  const __m256i f = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(bytes8, bytes8));
  return _mm512_inserti64x4(_mm512_zextsi256_si512(f), f, 1);
}
inline __m512i row_factor_i8(__m128i bytes8) {
  const __m256i f = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(bytes8, bytes8));
  return _mm512_inserti64x4(_mm512_zextsi256_si512(f), f, 1);
}
inline __m256i row_pair_u8(__m128i a, __m128i b) { return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)); }
inline __m256i row_pair_i8(__m128i a, __m128i b) { return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b)); }
inline __m256i fold(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// As packed_gemm_avx2.cpp: the x8 scale fields into sc[j * 8 + r], m[j * 8 + r].
inline void decode_k4_scales(const uint8_t* scales_lo, const uint8_t* scales_hi, uint8_t* sc, uint8_t* m) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
  const __m256i lo0 = loadu256(scales_lo), lo1 = loadu256(scales_lo + 32), hi = loadu256(scales_hi);
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

inline __m256i k4_min_term(const uint8_t* m, const int16_t* bsums) {
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8));
  alignas(16) int32_t pairs[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(pairs), _mm_hadd_epi16(b0, b1));
  __m256i sum = _mm256_setzero_si256();
  for (int p = 0; p < 4; ++p) {
    const __m256i mp = row_pair_u8(load64(m + 16 * p), load64(m + 16 * p + 8));
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(mp, _mm256_set1_epi32(pairs[p])));
  }
  return sum;
}

// ---- Q4_K x8 and Q5_K x8 -----------------------------------------------------------------------
// zmm W_p (p = 0, 1) = bytes [64p, 64p + 64) of sub-block j's nibbles = (V_2p | V_2p+1): its low
// nibbles are steps (2p, 2p + 1), its high nibbles steps (2p + 4, 2p + 5).

template <int NT, class Block>
void tile_k4_family(int64_t nb, const Block* w, const BlockQ8K* const* y, const __m512i* ex, float* const* out) {
  constexpr bool kFifthBit = std::is_same_v<Block, BlockQ5Kx8>;
  const __m512i m4 = _mm512_set1_epi8(0xF), sixteen = _mm512_set1_epi8(16);
  const __m512i idx[4] = {pair_index(0), pair_index(2), pair_index(4), pair_index(6)};
  // The qh bit of steps (2p, 2p + 1): bit 2p in the low half, bit 2p + 1 in the high half.
  __m512i step_bits[4];
  for (int p = 0; p < 4; ++p) {
    step_bits[p] = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8(static_cast<char>(1 << (2 * p))),
                                           _mm512_set1_epi8(static_cast<char>(1 << (2 * p + 1))));
  }
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  alignas(32) uint8_t sc[64], m[64];
  for (int64_t i = 0; i < nb; ++i) {
    const Block& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(Block)>(&b);
    decode_k4_scales(b.scales_lo, b.scales_hi, sc, m);
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      const __m512i scale = row_factor_u8(load64(sc + 8 * j));
      __m512i wv[4];  // steps (0,1), (2,3), (4,5), (6,7)
      for (int p = 0; p < 2; ++p) {
        const __m512i v = loadu512(b.qs + 128 * j + 64 * p);
        wv[p] = _mm512_and_si512(v, m4);
        wv[p + 2] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
      if constexpr (kFifthBit) {
        // qh byte bit s is step s's fifth bit; the zmm of steps (s, s + 1) takes bit s in its low
        // half and bit s + 1 in its high half. A byte mask per zmm adds the 16 (bit 4 is clear).
        const __m512i h = _mm512_broadcast_i64x4(loadu256(b.qh + 32 * j));
        for (int p = 0; p < 4; ++p) {
          wv[p] = _mm512_mask_add_epi8(wv[p], _mm512_test_epi8_mask(h, step_bits[p]), wv[p], sixteen);
        }
      }
      for (int t = 0; t < NT; ++t) {
        __m512i a[4];
        step_pairs<NT>(y, ex, idx, t, i, j, a);
        __m512i s16 = _mm512_maddubs_epi16(wv[0], a[0]);
        s16 = _mm512_add_epi16(s16, _mm512_maddubs_epi16(wv[1], a[1]));
        s16 = _mm512_add_epi16(s16, _mm512_maddubs_epi16(wv[2], a[2]));
        s16 = _mm512_add_epi16(s16, _mm512_maddubs_epi16(wv[3], a[3]));
        isum[t] = _mm512_dpwssd_epi32(isum[t], s16, scale);
      }
    }
    const __m256 xd = load_fp16x8(b.d), xdmin = load_fp16x8(b.dmin);
    for (int t = 0; t < NT; ++t) {
      const __m256 yd = _mm256_set1_ps(y[t][i].d);
      const __m256 mins = _mm256_cvtepi32_ps(k4_min_term(m, y[t][i].bsums));
      const __m256 part =
          _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(xd, yd), _mm256_cvtepi32_ps(fold(isum[t]))),
                        _mm256_mul_ps(_mm256_mul_ps(xdmin, yd), mins));
      acc[t] = _mm256_add_ps(acc[t], part);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

// ---- Q6_K x8 -----------------------------------------------------------------------------------

template <int NT>
void tile_q6_k(int64_t nb, const BlockQ6Kx8* w, const BlockQ8K* const* y, const __m512i* ex, float* const* out) {
  const __m512i m4 = _mm512_set1_epi8(0xF), m30 = _mm512_set1_epi8(0x30);
  const __m512i idx[4] = {pair_index(0), pair_index(2), pair_index(4), pair_index(6)};
  // Step s's 2 high bits sit at bits 2s, 2s + 1 of its qh byte and go to bits 4, 5: steps (0, 1)
  // shift left by 4 and 2, steps (2, 3) right by 0 and 2, each pair one 16-bit shift of a qh
  // vector broadcast to both halves (bits crossing into the neighbouring byte fall outside the
  // 0x30 mask).
  const __m512i shl01 = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
  const __m512i shr23 = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
  // (a & c) | b as one vpternlog (a = nibbles, b = the masked high bits, c = 0x0F).
  constexpr int kLowOrHigh = 0xEC;
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ6Kx8& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(BlockQ6Kx8)>(&b);
    __m512i isum[NT];
    __m256i off[NT];
    for (int t = 0; t < NT; ++t) {
      off[t] = _mm256_setzero_si256();
      for (int p = 0; p < 8; ++p) {
        const __m256i sp = row_pair_i8(load64(b.scales + 16 * p), load64(b.scales + 16 * p + 8));
        int32_t pair;
        std::memcpy(&pair, y[t][i].bsums + 2 * p, 4);
        off[t] = _mm256_add_epi32(off[t], _mm256_madd_epi16(sp, _mm256_set1_epi32(pair)));
      }
      isum[t] = _mm512_setzero_si512();
    }
    for (int c = 0; c < 8; ++c) {
      // h0 holds steps 0..3 (2-bit field q = step), h1 steps 4..7; as zmm pairs of steps.
      const __m512i h0 = _mm512_broadcast_i64x4(loadu256(b.qh + 64 * c));
      const __m512i h1 = _mm512_broadcast_i64x4(loadu256(b.qh + 64 * c + 32));
      __m512i wv[4];
      for (int p = 0; p < 2; ++p) {
        const __m512i v = loadu512(b.ql + 128 * c + 64 * p);
        // steps (2p, 2p + 1) from h0 and (2p + 4, 2p + 5) from h1
        const __m512i hlo = p == 0 ? _mm512_sllv_epi16(h0, shl01) : _mm512_srlv_epi16(h0, shr23);
        const __m512i hhi = p == 0 ? _mm512_sllv_epi16(h1, shl01) : _mm512_srlv_epi16(h1, shr23);
        wv[p] = _mm512_ternarylogic_epi32(v, _mm512_and_si512(hlo, m30), m4, kLowOrHigh);
        wv[p + 2] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), _mm512_and_si512(hhi, m30), m4, kLowOrHigh);
      }
      const __m512i sc_a = row_factor_i8(load64(b.scales + 16 * c));      // steps 0..3
      const __m512i sc_b = row_factor_i8(load64(b.scales + 16 * c + 8));  // steps 4..7
      for (int t = 0; t < NT; ++t) {
        __m512i a[4];
        step_pairs<NT>(y, ex, idx, t, i, c, a);
        const __m512i sa = _mm512_add_epi16(_mm512_maddubs_epi16(wv[0], a[0]), _mm512_maddubs_epi16(wv[1], a[1]));
        const __m512i sb = _mm512_add_epi16(_mm512_maddubs_epi16(wv[2], a[2]), _mm512_maddubs_epi16(wv[3], a[3]));
        isum[t] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(isum[t], sa, sc_a), sb, sc_b);
      }
    }
    const __m256 xd = load_fp16x8(b.d);
    for (int t = 0; t < NT; ++t) {
      const __m256i total = _mm256_sub_epi32(fold(isum[t]), _mm256_slli_epi32(off[t], 5));
      const __m256 d = _mm256_mul_ps(xd, _mm256_set1_ps(y[t][i].d));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(d, _mm256_cvtepi32_ps(total)));
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

// ---- Q8_0 x8 -----------------------------------------------------------------------------------

template <int NT>
void tile_q8_0(int64_t nb, const BlockQ8_0x8* w, const BlockQ8_0* const* y, float* const* out) {
  const __m512i idx[4] = {pair_index(0), pair_index(2), pair_index(4), pair_index(6)};
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ8_0x8& b = w[i];
    if constexpr (NT == 1) prefetch_block<sizeof(BlockQ8_0x8)>(&b);
    __m512i v[4], av[4];
    for (int p = 0; p < 4; ++p) {
      v[p] = loadu512(b.qs + 64 * p);  // steps (2p, 2p + 1)
      // |w| as max(w, -w) (unsigned for dpbusd; -128 stays 0x80 = 128).
      av[p] = _mm512_max_epi8(v[p], _mm512_sub_epi8(_mm512_setzero_si512(), v[p]));
    }
    for (int t = 0; t < NT; ++t) {
      const __m512i chunk = _mm512_zextsi256_si512(loadu256(y[t][i].qs));
      __m512i isum = _mm512_setzero_si512();
      for (int p = 0; p < 4; ++p) {
        // sign(a, w): a negated where w < 0, zeroed where w == 0.
        const __m512i a = step_pair(chunk, idx[p]);
        const __mmask64 neg = _mm512_movepi8_mask(v[p]);
        const __mmask64 zero = _mm512_testn_epi8_mask(v[p], v[p]);
        __m512i sa = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
        sa = _mm512_maskz_mov_epi8(~zero, sa);
        isum = _mm512_dpbusd_epi32(isum, av[p], sa);
      }
      const __m256 d = _mm256_mul_ps(load_fp16x8(b.d), _mm256_set1_ps(fp16_to_f32(y[t][i].d)));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(fold(isum)), d));
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out[t], acc[t]);
}

template <class WBlock, class ABlock, template <int> class Tile>
void gemm_groups(int64_t n, int64_t block_size, const uint8_t* w, int64_t group_bytes, int64_t n_groups,
                 const uint8_t* a, int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy) {
  const int64_t nb = n / block_size;
  const __m512i* ex = nullptr;
  if constexpr (std::is_same_v<ABlock, BlockQ8K>) {
    if (n_tokens % kTile == 1) {  // the one-token tile takes the last token
      struct alignas(64) Vec {
        __m512i v;
      };
      thread_local std::vector<Vec> expanded;
      expanded.resize(size_t(nb * 32));
      expand_q8k(nb, reinterpret_cast<const BlockQ8K*>(a + (n_tokens - 1) * a_stride), &expanded[0].v);
      ex = &expanded[0].v;
    }
  }
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
      Tile<NT>::run(nb, wg, rows, ex, outs);
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
  static void run(int64_t nb, const BlockQ4Kx8* w, const BlockQ8K* const* y, const __m512i* ex, float* const* o) {
    tile_k4_family<NT>(nb, w, y, ex, o);
  }
};
template <int NT>
struct TileQ5K {
  static void run(int64_t nb, const BlockQ5Kx8* w, const BlockQ8K* const* y, const __m512i* ex, float* const* o) {
    tile_k4_family<NT>(nb, w, y, ex, o);
  }
};
template <int NT>
struct TileQ6K {
  static void run(int64_t nb, const BlockQ6Kx8* w, const BlockQ8K* const* y, const __m512i* ex, float* const* o) {
    tile_q6_k<NT>(nb, w, y, ex, o);
  }
};
template <int NT>
struct TileQ8_0 {
  static void run(int64_t nb, const BlockQ8_0x8* w, const BlockQ8_0* const* y, const __m512i*, float* const* o) {
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

}  // namespace popper::cpu::avx512
