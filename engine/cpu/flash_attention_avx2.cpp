// AVX2 flash attention over one kv head (flash_attention.h): tiles of kTile positions; scores with
// FMAs over the head dimension (each key converted once per 4 query heads), the softmax's
// exponentials with a vectorised exp, the value sums over the transposed V rows.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/core/fp16.h"
#include "engine/cpu/flash_attention.h"
#include "engine/cpu/kernels.h"

namespace popper::cpu::avx2 {
namespace {

constexpr int64_t kTile = 64;     // positions per tile: scores and probabilities stay in L1
constexpr int kHeadsPerPass = 4;  // query heads whose accumulators share one converted key

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for x <= 0 (the softmax's arguments), Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a
// degree-6 polynomial in r, times 2^n. Relative error within ~2 ulp; arguments below -87 give 0.
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

// 8 cached elements as floats.
inline __m256 load8(GgmlType type, const uint8_t* p) {
  if (type == GgmlType::F16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}
inline float load1(GgmlType type, const uint8_t* p) {
  if (type == GgmlType::F16) return fp16_to_f32(*reinterpret_cast<const uint16_t*>(p));
  return *reinterpret_cast<const float*>(p);
}

}  // namespace

void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                          float* out) {
  const int64_t hd = kv.head_dim;
  const int64_t eb = kv.type == GgmlType::F16 ? 2 : 4;
  alignas(32) float s[kMaxAttentionGroup][kTile];
  float m[kMaxAttentionGroup], l[kMaxAttentionGroup];
  for (int64_t g = 0; g < n_q; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
    std::fill(out + g * hd, out + (g + 1) * hd, 0.0f);
  }
  for (int64_t j0 = 0; j0 < n_kv; j0 += kTile) {
    const int64_t nt = std::min(kTile, n_kv - j0);
    // Scores of the tile.
    for (int64_t g0 = 0; g0 < n_q; g0 += kHeadsPerPass) {
      const int64_t ng = std::min<int64_t>(kHeadsPerPass, n_q - g0);
      for (int64_t j = 0; j < nt; ++j) {
        const uint8_t* kj = kv.k + (j0 + j) * hd * eb;
        __m256 acc[kHeadsPerPass] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                                     _mm256_setzero_ps()};
        for (int64_t d = 0; d < hd; d += 8) {
          const __m256 kf = load8(kv.type, kj + d * eb);
          for (int64_t g = 0; g < ng; ++g)
            acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (g0 + g) * hd + d), kf, acc[g]);
        }
        for (int64_t g = 0; g < ng; ++g) s[g0 + g][j] = hsum(acc[g]) * scale;
      }
    }
    // Online softmax: rescale what was summed under the old max.
    const int64_t nt8 = nt / 8 * 8;
    for (int64_t g = 0; g < n_q; ++g) {
      float mt = -INFINITY;
      int64_t j = 0;
      if (nt8 > 0) {
        __m256 vm = _mm256_loadu_ps(s[g]);
        for (j = 8; j < nt8; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s[g] + j));
        mt = hmax(vm);
      }
      for (j = nt8; j < nt; ++j) mt = std::max(mt, s[g][j]);
      const float m_new = std::max(m[g], mt);
      const float c = std::exp(m[g] - m_new);  // 0 on the first tile (m = -inf)
      const __m256 vmax = _mm256_set1_ps(m_new);
      __m256 vsum = _mm256_setzero_ps();
      for (j = 0; j < nt8; j += 8) {
        const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s[g] + j), vmax));
        _mm256_storeu_ps(s[g] + j, p);
        vsum = _mm256_add_ps(vsum, p);
      }
      float sum = hsum(vsum);
      for (j = nt8; j < nt; ++j) {
        s[g][j] = std::exp(s[g][j] - m_new);
        sum += s[g][j];
      }
      l[g] = l[g] * c + sum;
      m[g] = m_new;
      if (c != 1.0f) {
        const __m256 vc = _mm256_set1_ps(c);
        float* o = out + g * hd;
        for (int64_t d = 0; d < hd; d += 8)
          _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), vc));
      }
    }
    // Values: out[g, d] += sum_j p[g, j] v_t[d, j0 + j].
    for (int64_t d = 0; d < hd; ++d) {
      const uint8_t* vd = kv.v_t + (d * kv.capacity + j0) * eb;
      for (int64_t g0 = 0; g0 < n_q; g0 += kHeadsPerPass) {
        const int64_t ng = std::min<int64_t>(kHeadsPerPass, n_q - g0);
        __m256 acc[kHeadsPerPass] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                                     _mm256_setzero_ps()};
        for (int64_t j = 0; j < nt8; j += 8) {
          const __m256 vf = load8(kv.type, vd + j * eb);
          for (int64_t g = 0; g < ng; ++g)
            acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(s[g0 + g] + j), vf, acc[g]);
        }
        for (int64_t g = 0; g < ng; ++g) {
          float v = hsum(acc[g]);
          for (int64_t j = nt8; j < nt; ++j) v += s[g0 + g][j] * load1(kv.type, vd + j * eb);
          out[(g0 + g) * hd + d] += v;
        }
      }
    }
  }
  for (int64_t g = 0; g < n_q; ++g) {
    const __m256 inv = _mm256_set1_ps(1.0f / l[g]);
    float* o = out + g * hd;
    for (int64_t d = 0; d < hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), inv));
  }
}

}  // namespace popper::cpu::avx2
