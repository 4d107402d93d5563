// AVX2 flash attention over one kv head (flash_attention.h), with the query heads in the 8 lanes
// of a vector (Qwen3-30B-A3B's group is exactly 8; fewer heads leave lanes idle, more take
// several passes). Per tile of kTile positions:
//   scores  S[j] (8 heads)  = sum_d k[j, d] * qT[d]      8 positions at a time: 8 FMA chains, the
//                                                          key element broadcast from a load
//   softmax M, L, P[j]       all elementwise over lanes  no horizontal max or sum at all
//   values  O[d] (8 heads) += sum_j v_t[d, j] * P[j]     8 value rows at a time: 8 FMA chains
// so the FMAs run at their throughput and nothing is reduced across lanes until the very end.
// f16 caches are converted to f32 one tile at a time into scratch (L1/L2).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/flash_attention.h"
#include "engine/cpu/kernels.h"

namespace popper::cpu::avx2 {
namespace {

constexpr int64_t kTile = 32;  // positions per tile: the tile's f32 keys and values fit L1
constexpr int kLanes = 8;      // query heads per pass

// e^x for x <= 0 (the softmax's arguments), Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a
// degree-6 polynomial in r, times 2^n. Relative error within ~2 ulp; arguments below -87
// (and -inf) give 0.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(pow2)));
}

// n cached elements at p (f16 or f32) as floats into dst, zero-filled up to `padded`.
inline void to_f32(GgmlType type, const uint8_t* p, int64_t n, int64_t padded, float* dst) {
  int64_t i = 0;
  if (type == GgmlType::F16) {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
    }
    for (; i < n; ++i) dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h[i])));
  } else {
    std::memcpy(dst, p, size_t(n) * 4);
    i = n;
  }
  for (; i < padded; ++i) dst[i] = 0.0f;
}

// One pass: up to 8 query heads (q: [n_q, head_dim]) over positions [0, n_kv).
void attention_pass(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                    float* out) {
  const int64_t hd = kv.head_dim;
  const int64_t eb = kv.type == GgmlType::F16 ? 2 : 4;
  alignas(32) float qT[kMaxHeadDim][kLanes];  // scaled queries, head in lane
  alignas(32) float oT[kMaxHeadDim][kLanes];  // running output, head in lane
  alignas(32) float kf[kTile][kMaxHeadDim];   // the tile's keys
  alignas(32) float vf[kMaxHeadDim][kTile];   // the tile's values, row d = dimension d
  alignas(32) float p[kTile][kLanes];         // scores, then probabilities
  for (int64_t d = 0; d < hd; ++d) {
    for (int g = 0; g < kLanes; ++g) qT[d][g] = g < n_q ? q[g * hd + d] * scale : 0.0f;
    _mm256_store_ps(oT[d], _mm256_setzero_ps());
  }
  __m256 m = _mm256_set1_ps(-INFINITY), l = _mm256_setzero_ps();
  for (int64_t j0 = 0; j0 < n_kv; j0 += kTile) {
    const int64_t nt = std::min(kTile, n_kv - j0);
    const int64_t nt8 = (nt + 7) / 8 * 8;  // scores are computed 8 positions at a time
    for (int64_t j = 0; j < nt8; ++j) {
      if (j < nt) {
        to_f32(kv.type, kv.k + (j0 + j) * hd * eb, hd, hd, kf[j]);
      } else {
        std::fill(kf[j], kf[j] + hd, 0.0f);
      }
    }
    // Scores, 8 positions by 8 heads per block.
    for (int64_t jb = 0; jb < nt8; jb += 8) {
      __m256 acc[8];
      for (int jj = 0; jj < 8; ++jj) acc[jj] = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 qv = _mm256_load_ps(qT[d]);
        for (int jj = 0; jj < 8; ++jj)
          acc[jj] = _mm256_fmadd_ps(_mm256_broadcast_ss(&kf[jb + jj][d]), qv, acc[jj]);
      }
      for (int jj = 0; jj < 8; ++jj) _mm256_store_ps(p[jb + jj], acc[jj]);
    }
    // Online softmax, every head in its lane.
    __m256 mt = _mm256_load_ps(p[0]);
    for (int64_t j = 1; j < nt; ++j) mt = _mm256_max_ps(mt, _mm256_load_ps(p[j]));
    const __m256 m_new = _mm256_max_ps(m, mt);
    const __m256 c = exp_nonpositive(_mm256_sub_ps(m, m_new));  // 0 on the first tile (m = -inf)
    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < nt8; ++j) {
      const __m256 pj =
          j < nt ? exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(p[j]), m_new)) : _mm256_setzero_ps();
      _mm256_store_ps(p[j], pj);
      sum = _mm256_add_ps(sum, pj);
    }
    l = _mm256_add_ps(_mm256_mul_ps(l, c), sum);
    m = m_new;
    // Values, 8 dimensions by 8 heads per block.
    for (int64_t d = 0; d < hd; ++d) to_f32(kv.type, kv.v_t + (d * kv.capacity + j0) * eb, nt, nt8, vf[d]);
    for (int64_t d0 = 0; d0 < hd; d0 += 8) {
      __m256 acc[8];
      for (int dd = 0; dd < 8; ++dd) acc[dd] = _mm256_mul_ps(_mm256_load_ps(oT[d0 + dd]), c);
      for (int64_t j = 0; j < nt8; ++j) {
        const __m256 pj = _mm256_load_ps(p[j]);
        for (int dd = 0; dd < 8; ++dd)
          acc[dd] = _mm256_fmadd_ps(_mm256_broadcast_ss(&vf[d0 + dd][j]), pj, acc[dd]);
      }
      for (int dd = 0; dd < 8; ++dd) _mm256_store_ps(oT[d0 + dd], acc[dd]);
    }
  }
  alignas(32) float inv[kLanes];
  _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), l));
  for (int64_t g = 0; g < n_q; ++g) {
    for (int64_t d = 0; d < hd; ++d) out[g * hd + d] = oT[d][g] * inv[g];
  }
}

}  // namespace

void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                          float* out) {
  for (int64_t g0 = 0; g0 < n_q; g0 += kLanes) {
    attention_pass(q + g0 * kv.head_dim, std::min<int64_t>(kLanes, n_q - g0), kv, n_kv, scale,
                   out + g0 * kv.head_dim);
  }
}

}  // namespace popper::cpu::avx2
