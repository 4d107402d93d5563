// AVX2 + FMA + F16C dot products and activation quantisers. The quantised dots follow the
// scheme of ggml's x86 kernels: unsigned weight quants times signed int8 activations with
// maddubs (no int16 overflow: 2 * 63 * 127 < 32767), scaled by the sub-block scale with madd,
// summed exactly in int32 per block.
//
// The quantised dots are bit-identical with the scalar reference (engine/cpu/vec_dot_scalar.cpp)
// and so with the packed kernels (packed_gemm_avx2.cpp): each block's integer sums are reduced
// to one int32 (exact), and the float steps per block are the reference's, in its order, into
// one float (this file is built with -ffp-contract=off). Why: the file layout and the packed
// layout serve the same model (POPPER_REPACK=0 is its reference path), and a last-bit
// difference between them is not harmless: the next layer requantises its input to int8, and a
// value on a rounding boundary moves a whole level (falsifiers/packed_matmul_test.cpp). The
// float-weight dots (F32/F16/BF16) have no packed twin and keep their 8-lane FMA sums.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "engine/core/fp16.h"
#include "engine/cpu/kernels.h"
#include "engine/quant/blocks.h"

namespace popper::cpu::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m128i s) {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}
inline int hsum_i32(__m256i v) {
  return hsum_i32(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

// Software prefetch distance for weight blocks. A decode matvec streams every weight once, and
// one core's hardware prefetcher alone leaves the dot waiting on DRAM between bursts; asking
// for the bytes ~1 KiB ahead (several blocks, crossing into the next row, which is
// contiguous) keeps more misses in flight. Prefetches past the end of a mapping do not fault.
constexpr int kPrefetchBytes = 1024;

// Prefetches the cache lines of one block, kPrefetchBytes ahead of p.
template <int kBlockBytes>
inline void prefetch_ahead(const void* p) {
  const char* c = static_cast<const char*>(p) + kPrefetchBytes;
  for (int off = 0; off < kBlockBytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Unpacks the 12-byte Q4_K/Q5_K scale field into bytes 0..7 = scales, 8..15 = mins.
inline __m128i unpack_scales_mins(const uint8_t* packed) {
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
  const uint32_t mins_lo = u[1] & kMask1;
  u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  u[2] = mins_lo;
  u[0] &= kMask1;
  return _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]),
                       static_cast<int>(u[0]));
}

// Shuffle masks: broadcast16[k] copies int16 element k of each 128-bit lane across the lane;
// pair_bytes[k] makes 8 copies of byte 2k then 8 of byte 2k+1 (a Q6_K scale pair).
struct ShuffleMasks {
  uint8_t broadcast16[8][32];
  uint8_t pair_bytes[8][16];
};
constexpr ShuffleMasks make_shuffle_masks() {
  ShuffleMasks m{};
  for (int k = 0; k < 8; ++k) {
    for (int j = 0; j < 32; ++j) m.broadcast16[k][j] = static_cast<uint8_t>(2 * k + (j & 1));
    for (int j = 0; j < 16; ++j) m.pair_bytes[k][j] = static_cast<uint8_t>(2 * k + (j >= 8));
  }
  return m;
}
alignas(32) constexpr ShuffleMasks kMasks = make_shuffle_masks();

inline __m256i broadcast16(__m256i v, int k) { return _mm256_shuffle_epi8(v, loadu(kMasks.broadcast16[k])); }

// The min term of a Q4_K/Q5_K block: sum_j m_j * (bsums[2j] + bsums[2j+1]) as 4 int32 lanes.
inline __m128i min_products(__m256i mins_and_scales, const int16_t* bsums) {
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8));
  const __m128i q8sums = _mm_hadd_epi16(b0, b1);
  return _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8sums);
}

// fp16 fields as floats, in lanes 0 and 1 (F16C converts exactly, as fp16_to_f32 does): a
// Q4_K/Q5_K block's adjacent d and dmin, or two scales packed by the caller.
inline __m128 fp16x2_to_f32(uint32_t two_halves) {
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(two_halves)));
}
static_assert(offsetof(BlockQ4K, dmin) == offsetof(BlockQ4K, d) + 2 &&
                  offsetof(BlockQ5K, dmin) == offsetof(BlockQ5K, d) + 2,
              "block_d_dmin reads d and dmin as one 32-bit word");
inline __m128 block_d_dmin(const uint16_t* d_then_dmin) {
  uint32_t v;
  std::memcpy(&v, d_then_dmin, 4);
  return fp16x2_to_f32(v);
}

// One Q4_K/Q5_K block's float step, the reference's: sum + (d * sumi - dmin * min term), with
// d = x.d * y.d and dmin = x.dmin * y.d. x_d_dmin holds [x.d, x.dmin]; sumi's 8 lanes and the
// min term's 4 are reduced together (exact int sums), one multiply serves both products.
inline float k4_block_step(float sum, __m128 x_d_dmin, const BlockQ8K& y, __m256i sumi,
                           __m256i mins_and_scales) {
  const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sumi), _mm256_extracti128_si256(sumi, 1));
  const __m128i h = _mm_hadd_epi32(s4, min_products(mins_and_scales, y.bsums));
  const __m128 sums = _mm_cvtepi32_ps(_mm_hadd_epi32(h, h));                  // [sumi, min term, ...]
  const __m128 p = _mm_mul_ps(_mm_mul_ps(x_d_dmin, _mm_set1_ps(y.d)), sums);  // [d * sumi, dmin * mins]
  return sum + (_mm_cvtss_f32(p) - _mm_cvtss_f32(_mm_movehdup_ps(p)));
}

// Rounds ties away from zero (roundf), exactly: trunc plus one where |fraction| >= 0.5.
inline __m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign_bit, v));
  const __m256 bump = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
  return _mm256_add_ps(t, bump);
}

// Packs 4 x 8 int32 (each in [-128, 127]) into 32 int8 in element order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Q4_K x Q8_K for kTokens activation rows at once: the weight block is unpacked once (nibbles,
// scales, mins) and used for every token. Each token's operations are exactly those of the
// single-token dot, in the same order, so the results are bit-identical to vec_dot_q4_k.
template <int kTokens>
inline void dot_q4_k(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockQ4K*>(w);
  const BlockQ8K* y[kTokens];
  for (int t = 0; t < kTokens; ++t) y[t] = static_cast<const BlockQ8K*>(a[t]);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  float sum[kTokens];
  for (int t = 0; t < kTokens; ++t) sum[t] = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    prefetch_ahead<sizeof(x[i])>(&x[i]);
    const __m128 x_d_dmin = block_d_dmin(&x[i].d);
    const __m256i mins_and_scales = _mm256_cvtepu8_epi16(unpack_scales_mins(x[i].scales));
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(mins_and_scales));
    __m256i sumi[kTokens];
    for (int t = 0; t < kTokens; ++t) sumi[t] = _mm256_setzero_si256();
    const uint8_t* q4 = x[i].qs;
    for (int g = 0; g < 4; ++g, q4 += 32) {
      const __m256i bits = loadu(q4);
      const __m256i lo = _mm256_and_si256(bits, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      const __m256i sc_lo = broadcast16(scales, 2 * g);
      const __m256i sc_hi = broadcast16(scales, 2 * g + 1);
      for (int t = 0; t < kTokens; ++t) {
        const int8_t* q8 = y[t][i].qs + 64 * g;
        const __m256i p_lo = _mm256_madd_epi16(sc_lo, _mm256_maddubs_epi16(lo, loadu(q8)));
        const __m256i p_hi = _mm256_madd_epi16(sc_hi, _mm256_maddubs_epi16(hi, loadu(q8 + 32)));
        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
      }
    }
    for (int t = 0; t < kTokens; ++t) {
      sum[t] = k4_block_step(sum[t], x_d_dmin, y[t][i], sumi[t], mins_and_scales);
    }
  }
  for (int t = 0; t < kTokens; ++t) out[t] = sum[t];
}

// Q6_K x Q8_K for kTokens activation rows, the block unpacked once; per token the same
// operations in the same order as the single-token dot (bit-identical results).
template <int kTokens>
inline void dot_q6_k(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockQ6K*>(w);
  const BlockQ8K* y[kTokens];
  for (int t = 0; t < kTokens; ++t) y[t] = static_cast<const BlockQ8K*>(a[t]);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i m2 = _mm256_set1_epi8(3);
  float sum[kTokens];
  for (int t = 0; t < kTokens; ++t) sum[t] = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    prefetch_ahead<sizeof(x[i])>(&x[i]);
    const float xd = _mm_cvtss_f32(fp16x2_to_f32(x[i].d));
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales));
    const __m256i scales16 = _mm256_cvtepi8_epi16(scales);
    __m256i sumi[kTokens];
    for (int t = 0; t < kTokens; ++t) sumi[t] = _mm256_setzero_si256();
    for (int g = 0; g < 2; ++g, ql += 64, qh += 32) {
      const __m256i b1 = loadu(ql);
      const __m256i b2 = loadu(ql + 32);
      const __m256i bh = loadu(qh);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4)),
          _mm256_or_si256(_mm256_and_si256(b2, m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4))};
      for (int k = 0; k < 4; ++k) {
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
            scales, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMasks.pair_bytes[4 * g + k]))));
        for (int t = 0; t < kTokens; ++t) {
          const __m256i p16 = _mm256_maddubs_epi16(q[k], loadu(y[t][i].qs + 128 * g + 32 * k));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc, p16));
        }
      }
    }
    for (int t = 0; t < kTokens; ++t) {
      // 32 * sum_k sc_k * bsums_k: the offset of the stored quants (q - 32), from the bsums.
      const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(loadu(y[t][i].bsums), scales16), 5);
      // The reference: sum += x.d * y.d * sumi.
      const int block_sum = hsum_i32(_mm256_sub_epi32(sumi[t], offset));
      sum[t] += xd * y[t][i].d * static_cast<float>(block_sum);
    }
  }
  for (int t = 0; t < kTokens; ++t) out[t] = sum[t];
}

}  // namespace

namespace {

// Float-like weight rows against f32 activations: Load8 widens 8 weights at element i to
// floats, Widen1 one weight for the tail.
template <class T, class Load8, class Widen1>
float dot_float_row(int64_t n, const void* w, const void* a, Load8 load8, Widen1 widen1) {
  const auto* x = static_cast<const T*>(w);
  const auto* y = static_cast<const float*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(load8(x + i), _mm256_loadu_ps(y + i), acc0);
    acc1 = _mm256_fmadd_ps(load8(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += widen1(x[i]) * y[i];
  return sum;
}

}  // namespace

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  return dot_float_row<float>(
      n, w, a, [](const float* p) { return _mm256_loadu_ps(p); }, [](float v) { return v; });
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  return dot_float_row<uint16_t>(
      n, w, a,
      [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); },
      fp16_to_f32);
}

float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  return dot_float_row<uint16_t>(
      n, w, a,
      [](const uint16_t* p) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      },
      bf16_to_f32);
}

// Activations come from quantize_row_q8_0 and lie in [-127, 127], so negating them by the
// weight's sign never overflows.
float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const __m256i ones = _mm256_set1_epi16(1);
  auto block_sums = [&](int64_t i) {  // 8 int32 lanes summing to block i's integer dot
    const __m256i qx = loadu(x[i].qs);
    const __m256i qy = loadu(y[i].qs);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx)), ones);
  };
  // The reference, block by block: sum += sumi * (x.d * y.d). [x.d, y.d] converts in one step.
  auto dd = [&](int64_t i) {
    const __m128 v = fp16x2_to_f32(uint32_t(x[i].d) | uint32_t(y[i].d) << 16);
    return _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)));
  };
  const int64_t nb = n / kQK8_0;
  float sum = 0.0f;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {  // two blocks' lanes reduced together: [sumi_i, sumi_i+1]
    const __m256i h = _mm256_hadd_epi32(block_sums(i), block_sums(i + 1));
    const __m128i h4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    const __m128 sums = _mm_cvtepi32_ps(_mm_hadd_epi32(h4, h4));
    sum += _mm_cvtss_f32(sums) * dd(i);
    sum += _mm_cvtss_f32(_mm_movehdup_ps(sums)) * dd(i + 1);
  }
  if (i < nb) sum += static_cast<float>(hsum_i32(block_sums(i))) * dd(i);
  return sum;
}

float vec_dot_q4_k(int64_t n, const void* w, const void* a) {
  float out;
  dot_q4_k<1>(n, w, &a, &out);
  return out;
}

void vec_dot_q4_k_x4(int64_t n, const void* w, const void* const* a, float* out) {
  dot_q4_k<4>(n, w, a, out);
}

float vec_dot_q5_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5K*>(w);
  const auto* y = static_cast<const BlockQ8K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i bit = _mm256_set1_epi8(1);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    prefetch_ahead<sizeof(x[i])>(&x[i]);
    const __m256i mins_and_scales = _mm256_cvtepu8_epi16(unpack_scales_mins(x[i].scales));
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(mins_and_scales));
    const uint8_t* q5 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    const __m256i hbits = loadu(x[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int g = 0; g < 4; ++g, q5 += 32, q8 += 64) {
      const __m256i bits = loadu(q5);
      const __m256i h_lo = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * g), bit), 4);
      const __m256i h_hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * g + 1), bit), 4);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), h_lo);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h_hi);
      __m256i p_lo = _mm256_maddubs_epi16(lo, loadu(q8));
      __m256i p_hi = _mm256_maddubs_epi16(hi, loadu(q8 + 32));
      p_lo = _mm256_madd_epi16(broadcast16(scales, 2 * g), p_lo);
      p_hi = _mm256_madd_epi16(broadcast16(scales, 2 * g + 1), p_hi);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    sum = k4_block_step(sum, block_d_dmin(&x[i].d), y[i], sumi, mins_and_scales);
  }
  return sum;
}

float vec_dot_q6_k(int64_t n, const void* w, const void* a) {
  float out;
  dot_q6_k<1>(n, w, &a, &out);
  return out;
}

void vec_dot_q6_k_x4(int64_t n, const void* w, const void* const* a, float* out) {
  dot_q6_k<4>(n, w, a, out);
}

void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(dst);
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    __m256 vmax = _mm256_setzero_ps();
    for (int j = 0; j < kQK_K; j += 8)
      vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + j)));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    if (!amax) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    // The reference keeps the first element of largest magnitude (its sign sets the scale's).
    float max = 0;
    const __m256 vam = _mm256_set1_ps(amax);
    for (int j = 0; j < kQK_K; j += 8) {
      const int hit = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + j)), vam, _CMP_EQ_OQ));
      if (hit) {
        max = x[j + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int j = 0; j < kQK_K; j += 32) {
      __m256i v[4];
      for (int k = 0; k < 4; ++k) {
        // cvtps rounds to nearest even under the default MXCSR, as nearest_int does.
        v[k] = _mm256_min_epi32(cap, _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * k))));
      }
      y[i].bsums[j / 16] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(v[0], v[1])));
      y[i].bsums[j / 16 + 1] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(v[2], v[3])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), pack_i32_to_i8(v[0], v[1], v[2], v[3]));
    }
    y[i].d = 1 / iscale;
  }
}

void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    const float* x = src + i * kQK8_0;
    __m256 xs[4];
    __m256 vmax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      xs[k] = _mm256_loadu_ps(x + 8 * k);
      vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign_bit, xs[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(xs[k], vid)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), pack_i32_to_i8(v[0], v[1], v[2], v[3]));
  }
}

uint64_t read_stream(const uint8_t* p, int64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < bytes; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(s, 0) ^ _mm256_extract_epi64(s, 1) ^
                               _mm256_extract_epi64(s, 2) ^ _mm256_extract_epi64(s, 3));
}

}  // namespace popper::cpu::avx2
