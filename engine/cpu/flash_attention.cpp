// The scalar path of flash_attention.h (the reference the AVX2 path is checked against, and
// what CPUs without AVX2 run): the same tiles and online softmax, with std::exp.
#include "engine/cpu/flash_attention.h"

#include <algorithm>
#include <cmath>

#include "engine/core/fp16.h"
#include "engine/core/result.h"
#include "engine/cpu/kernels.h"

namespace popper::cpu {
namespace {

constexpr int64_t kTile = 64;

float element(const KvHeadView& kv, const uint8_t* base, int64_t i) {
  if (kv.type == GgmlType::F16) return fp16_to_f32(reinterpret_cast<const uint16_t*>(base)[i]);
  return reinterpret_cast<const float*>(base)[i];
}

void attention_scalar(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                      float* out) {
  const int64_t hd = kv.head_dim;
  const int64_t eb = kv.type == GgmlType::F16 ? 2 : 4;
  float s[kMaxAttentionGroup][kTile];
  float m[kMaxAttentionGroup], l[kMaxAttentionGroup];
  for (int64_t g = 0; g < n_q; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
    std::fill(out + g * hd, out + (g + 1) * hd, 0.0f);
  }
  for (int64_t j0 = 0; j0 < n_kv; j0 += kTile) {
    const int64_t nt = std::min(kTile, n_kv - j0);
    for (int64_t g = 0; g < n_q; ++g) {
      float mt = -INFINITY;
      for (int64_t j = 0; j < nt; ++j) {
        const uint8_t* kj = kv.k + (j0 + j) * hd * eb;
        float dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q[g * hd + d] * element(kv, kj, d);
        s[g][j] = dot * scale;
        mt = std::max(mt, s[g][j]);
      }
      const float m_new = std::max(m[g], mt);
      const float c = std::exp(m[g] - m_new);
      float sum = 0;
      for (int64_t j = 0; j < nt; ++j) {
        s[g][j] = std::exp(s[g][j] - m_new);
        sum += s[g][j];
      }
      l[g] = l[g] * c + sum;
      m[g] = m_new;
      for (int64_t d = 0; d < hd; ++d) {
        const uint8_t* vd = kv.v_t + (d * kv.capacity + j0) * eb;
        float v = 0;
        for (int64_t j = 0; j < nt; ++j) v += s[g][j] * element(kv, vd, j);
        out[g * hd + d] = out[g * hd + d] * c + v;
      }
    }
  }
  for (int64_t g = 0; g < n_q; ++g) {
    for (int64_t d = 0; d < hd; ++d) out[g * hd + d] /= l[g];
  }
}

}  // namespace

void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                          float* out, SimdPath path) {
  POPPER_CHECK(n_q >= 1 && n_q <= kMaxAttentionGroup && n_kv >= 1 && n_kv <= kv.capacity &&
                   kv.head_dim % 8 == 0 && kv.head_dim <= kMaxHeadDim &&
                   (kv.type == GgmlType::F16 || kv.type == GgmlType::F32),
               "attention: ", n_q, " heads, ", n_kv, " of ", kv.capacity, " positions, head_dim ",
               kv.head_dim, " ", ggml_type_name(kv.type));
  if (path != SimdPath::kScalar && vec_dot_fn(GgmlType::F16, SimdPath::kAvx2) != nullptr) {
    avx2::attention_head_group(q, n_q, kv, n_kv, scale, out);
  } else {
    attention_scalar(q, n_q, kv, n_kv, scale, out);
  }
}

}  // namespace popper::cpu
