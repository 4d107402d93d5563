// Falsifiers for engine/cpu/flash_attention.h: every path's one-pass tiled attention against an
// exact two-pass reference in double, over head counts, depths (tile edges included), head sizes
// and both cache types; and a control that the check sees a dropped last key.
#include "engine/cpu/flash_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/core/rng.h"

namespace popper::cpu {
namespace {

// One kv head's cache in the KvCache layout, with its own storage.
struct HeadCache {
  GgmlType type;
  int64_t capacity, head_dim;
  std::vector<uint8_t> k, v_t;
  HeadCache(GgmlType t, int64_t cap, int64_t hd, Rng& rng) : type(t), capacity(cap), head_dim(hd) {
    const int64_t eb = t == GgmlType::F16 ? 2 : 4;
    k.resize(size_t(cap * hd * eb));
    v_t.resize(size_t(cap * hd * eb));
    for (int64_t i = 0; i < cap * hd; ++i) {
      set(k, i, 2.0f * rng.normal());  // scores spread over several units: a peaked softmax
      set(v_t, i, rng.normal());
    }
  }
  void set(std::vector<uint8_t>& b, int64_t i, float v) {
    if (type == GgmlType::F16)
      reinterpret_cast<uint16_t*>(b.data())[i] = f32_to_fp16(v);
    else
      reinterpret_cast<float*>(b.data())[i] = v;
  }
  double get(const std::vector<uint8_t>& b, int64_t i) const {
    if (type == GgmlType::F16) return fp16_to_f32(reinterpret_cast<const uint16_t*>(b.data())[i]);
    return reinterpret_cast<const float*>(b.data())[i];
  }
  KvHeadView view() const { return {type, k.data(), v_t.data(), capacity, head_dim}; }
};

// Exact softmax-weighted sum (two passes, double).
std::vector<double> reference(const HeadCache& c, const std::vector<float>& q, int64_t n_q, int64_t n_kv,
                              float scale) {
  const int64_t hd = c.head_dim;
  std::vector<double> out(static_cast<size_t>(n_q * hd), 0.0);
  for (int64_t g = 0; g < n_q; ++g) {
    std::vector<double> s(static_cast<size_t>(n_kv));
    for (int64_t j = 0; j < n_kv; ++j) {
      double dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += double(q[g * hd + d]) * c.get(c.k, j * hd + d);
      s[j] = dot * scale;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (auto& v : s) sum += (v = std::exp(v - mx));
    for (int64_t d = 0; d < hd; ++d) {
      double acc = 0;
      for (int64_t j = 0; j < n_kv; ++j) acc += s[j] * c.get(c.v_t, d * c.capacity + j);
      out[g * hd + d] = acc / sum;
    }
  }
  return out;
}

// Float rounding of the scores (|q.k| ~ tens, an ulp ~ 2e-6) moves each probability by that
// relative amount through exp; the exponential itself is within ~2 ulp; sums of up to 2000 float
// terms add ~sqrt(n) * 2^-24 relative. Outputs are averages of values of magnitude ~1-4. Observed
// worst on these seeds: 1.5e-6 (scalar), 7e-7 (AVX2); the bound leaves 10x for other data.
constexpr double kAttentionAbs = 2e-5;

TEST(FlashAttention, EveryPathMatchesTheExactSoftmaxWithinTheBound) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-ATTENTION");
  Rng rng(53);
  double worst[2] = {0, 0};  // scalar, avx2: reported, so the bound's slack is visible
  for (GgmlType type : {GgmlType::F16, GgmlType::F32}) {
    for (int64_t hd : {64, 128}) {
      const int64_t capacity = 2000;
      const HeadCache cache(type, capacity, hd, rng);
      for (int64_t n_q : {1, 4, 8}) {
        for (int64_t n_kv : {1, 7, 63, 64, 65, 200, 1999}) {
          std::vector<float> q(size_t(n_q * hd));
          for (auto& v : q) v = rng.normal();
          const float scale = 1.0f / std::sqrt(float(hd));
          const auto want = reference(cache, q, n_q, n_kv, scale);
          for (SimdPath path : {SimdPath::kScalar, SimdPath::kAvx2}) {
            if (path == SimdPath::kAvx2 && vec_dot_fn(GgmlType::F16, SimdPath::kAvx2) == nullptr) continue;
            std::vector<float> got(want.size(), NAN);
            attention_head_group(q.data(), n_q, cache.view(), n_kv, scale, got.data(), path);
            for (size_t i = 0; i < want.size(); ++i) {
              worst[path == SimdPath::kAvx2] =
                  std::max(worst[path == SimdPath::kAvx2], std::fabs(got[i] - want[i]));
              ASSERT_NEAR(got[i], want[i], kAttentionAbs)
                  << ggml_type_name(type) << " hd " << hd << " n_q " << n_q << " n_kv " << n_kv << " "
                  << simd_path_name(path) << " at " << i;
            }
          }
        }
      }
    }
  }
  RecordProperty("worst_abs_error_scalar", std::to_string(worst[0]));
  RecordProperty("worst_abs_error_avx2", std::to_string(worst[1]));
  std::printf("worst |error|: scalar %.3g, avx2 %.3g (bound %.3g)\n", worst[0], worst[1], kAttentionAbs);
}

// Negative control: attention that drops the last key (a pipeline fault) must fail the bound.
TEST(FlashAttention, ControlDroppingTheLastKeyIsDetected) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-ATTENTION");
  Rng rng(59);
  const HeadCache cache(GgmlType::F16, 100, 128, rng);
  std::vector<float> q(128 * 4);
  for (auto& v : q) v = rng.normal();
  const float scale = 1.0f / std::sqrt(128.0f);
  const auto want = reference(cache, q, 4, 100, scale);
  std::vector<float> got(want.size());
  attention_head_group(q.data(), 4, cache.view(), 99, scale, got.data());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_GT(worst, kAttentionAbs);
}

}  // namespace
}  // namespace popper::cpu
