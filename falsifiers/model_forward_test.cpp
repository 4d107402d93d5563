// Falsifiers for the forward pass (contracts/qwen3-moe-forward-v1.yaml): chunked prefill, the
// router's arithmetic and spread, GQA attention against a plain per-head loop, RoPE.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "engine/core/fp16.h"
#include "engine/cpu/moe_route.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

using testing::max_abs_diff;
using testing::test_prompt;
using testing::tiny_model;

// Chunked and whole-prompt prefill run the same per-token arithmetic; only float accumulation
// order may differ (not even that on the current kernels): 1e-4 absolute on logits ~10.
constexpr float kChunkLogitTolerance = 1e-4f;
// Renormalised router weights are k floats divided by their float sum: a few ulps off 1.
constexpr double kRouterSumTolerance = 1e-6;
// Batched attention (f32 kernels) vs a double-precision loop over ~40 positions.
constexpr float kAttentionTolerance = 1e-5f;

// --- chunked prefill ---------------------------------------------------------------------

TEST(ChunkedPrefill, ChunksOf1And7AndWholeGiveTheSameLogits) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_006");
  for (SynthArch arch : {SynthArch::kQwen3Moe, SynthArch::kQwen3}) {
    const Model& model = tiny_model({arch, SynthQuant::kF32});
    CpuBackend backend(1);
    const auto prompt = test_prompt(40, model.config().n_vocab, 77);
    std::vector<std::vector<float>> all(3);
    const int64_t chunks[3] = {1, 7, int64_t(prompt.size())};
    for (int i = 0; i < 3; ++i) {
      SessionOptions so;
      so.capacity = 64;
      so.max_batch = chunks[i];
      Session s(model, backend, so);
      ASSERT_TRUE(s.forward(prompt, nullptr, &all[i]).ok());
      ASSERT_EQ(all[i].size(), prompt.size() * size_t(model.config().n_vocab));
    }
    EXPECT_LE(max_abs_diff(all[0], all[2]), kChunkLogitTolerance)
        << synth_arch_name(arch) << " chunk 1 vs whole";
    EXPECT_LE(max_abs_diff(all[1], all[2]), kChunkLogitTolerance)
        << synth_arch_name(arch) << " chunk 7 vs whole";
  }
}

TEST(ChunkedPrefill, PromptFedInPiecesEqualsOneForward) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_006");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  CpuBackend backend(2);  // also exercises the threaded kernels
  const auto prompt = test_prompt(23, model.config().n_vocab, 78);
  SessionOptions so;
  so.capacity = 32;
  Session whole(model, backend, so), pieces(model, backend, so);
  std::vector<float> a(model.config().n_vocab), b(model.config().n_vocab);
  ASSERT_TRUE(whole.forward(prompt, a.data()).ok());
  std::span<const int32_t> p(prompt);
  ASSERT_TRUE(pieces.forward(p.subspan(0, 5), b.data()).ok());
  ASSERT_TRUE(pieces.forward(p.subspan(5, 11), b.data()).ok());
  ASSERT_TRUE(pieces.forward(p.subspan(16), b.data()).ok());
  EXPECT_LE(max_abs_diff(a, b), kChunkLogitTolerance);
}

// --- router ------------------------------------------------------------------------------

TEST(Router, SoftmaxIsFiniteOnExtremeLogits) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_002");
  const float big = std::numeric_limits<float>::max();
  const std::vector<std::vector<float>> cases = {{big, -big, 0.0f, 1e30f},
                                                 {-big, -big, -big, -big},
                                                 {1e30f, 1e30f, -1e30f, 88.0f},
                                                 {-1e-45f, 1e-45f, 0, 0}};
  for (const auto& logits : cases) {
    std::vector<float> p(logits.size());
    cpu::router_softmax(logits.data(), int64_t(logits.size()), p.data());
    double sum = 0;
    for (float v : p) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_GE(v, 0.0f);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST(Router, TopKReturnsTheLargestWithRenormalisedWeights) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_002");
  Rng rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 8 + int64_t(rng.below(121));
    const int64_t k = 1 + int64_t(rng.below(8));
    std::vector<float> logits(n), p(n);
    for (auto& v : logits) v = rng.normal() * 4.0f;
    cpu::router_softmax(logits.data(), n, p.data());
    std::vector<int32_t> ids(k);
    std::vector<float> w(k);
    cpu::router_top_k(p.data(), n, k, ids.data(), w.data());
    std::vector<float> sorted = p;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double sum = 0;
    for (int64_t s = 0; s < k; ++s) {
      EXPECT_EQ(p[ids[s]], sorted[s]) << "slot " << s;
      sum += w[s];
    }
    EXPECT_NEAR(sum, 1.0, kRouterSumTolerance);
    EXPECT_EQ(std::set<int32_t>(ids.begin(), ids.end()).size(), size_t(k)) << "distinct experts";
  }
}

TEST(Router, UniformLogitsGiveOneOverKAndTheLowestIds) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_002");
  for (int64_t k : {1, 2, 8}) {
    std::vector<float> logits(128, 0.25f), p(128);
    cpu::router_softmax(logits.data(), 128, p.data());
    std::vector<int32_t> ids(k);
    std::vector<float> w(k);
    cpu::router_top_k(p.data(), 128, k, ids.data(), w.data());
    for (int64_t s = 0; s < k; ++s) {
      EXPECT_EQ(ids[s], s) << "ties go to the lower index";
      EXPECT_NEAR(w[s], 1.0 / double(k), kRouterSumTolerance);
    }
  }
}

TEST(Router, ExpertChoicesSpreadOverTheExpertsOnSyntheticModels) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_003");
  for (SynthQuant q : {SynthQuant::kF32, SynthQuant::kQ4_K_M}) {
    const Model& model = tiny_model({SynthArch::kQwen3Moe, q});
    const ModelConfig& c = model.config();
    CpuBackend backend(1);
    const auto prompt = test_prompt(96, c.n_vocab, 91);
    SessionOptions so;
    so.capacity = 96;
    so.record_routing = true;
    Session s(model, backend, so);
    std::vector<float> logits(c.n_vocab);
    ASSERT_TRUE(s.forward(prompt, logits.data()).ok());
    for (int64_t il = 0; il < c.n_layer; ++il) {
      const auto& ids = s.routing().ids[il];
      ASSERT_EQ(ids.size(), prompt.size() * size_t(c.n_expert_used));
      std::vector<int64_t> count(c.n_expert, 0);
      for (int32_t e : ids) count[e]++;
      const int64_t used = std::count_if(count.begin(), count.end(), [](int64_t n) { return n > 0; });
      const int64_t busiest = *std::max_element(count.begin(), count.end());
      // Not degenerate: every expert gets work, and none takes more than half of all slots.
      EXPECT_EQ(used, c.n_expert) << "layer " << il;
      EXPECT_LE(busiest * 2, int64_t(ids.size())) << "layer " << il;
      const auto& w = s.routing().weights[il];
      for (size_t t = 0; t < prompt.size(); ++t) {
        double sum = 0;
        for (int64_t j = 0; j < c.n_expert_used; ++j) sum += w[t * c.n_expert_used + j];
        EXPECT_NEAR(sum, 1.0, kRouterSumTolerance);
      }
    }
  }
}

// --- the backend seam ----------------------------------------------------------------------

// A model's weights are taken once per device: every CpuBackend (a server's per-slot backends)
// reads the one prepared copy, so a repacked layout would not be made once per slot.
TEST(BackendSeam, EveryCpuBackendSharesTheModelsPreparedWeights) {
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  CpuBackend a(1), b(2);
  auto wa = model.weights_on(a);
  auto wb = model.weights_on(b);
  ASSERT_TRUE(wa.ok() && wb.ok());
  EXPECT_EQ(wa.value(), wb.value());
  EXPECT_EQ(&wa.value()->device(), &a.device());
  // Every bound tensor has a handle of the file's shape; the MoE model has no dense FFN.
  const PreparedLayer& L = wa.value()->layers[0];
  const LayerWeights& F = model.weights().layers[0];
  EXPECT_EQ(L.ffn_gate, nullptr);
  ASSERT_NE(L.ffn_up_exps, nullptr);
  EXPECT_EQ(L.ffn_up_exps->n_expert(), F.ffn_up_exps.n_expert);
  EXPECT_EQ(L.ffn_up_exps->n_out(), F.ffn_up_exps.n_out);
  EXPECT_EQ(L.ffn_up_exps->n_in(), F.ffn_up_exps.all.n_in);
  EXPECT_EQ(L.attn_q_norm->n_in(), model.config().head_dim);
}

// A handle is read only by the device that made it: another device's handle is a bug the
// backend stops at (an always-on check), not a pointer it dereferences as its own.
TEST(BackendSeam, AWeightOfAnotherDeviceAborts) {
  static constexpr BackendDevice kElsewhere{"elsewhere"};
  struct ForeignWeight final : BackendWeight {
    ForeignWeight() : BackendWeight(kElsewhere, GgmlType::F32, 64, 1, 1) {}
    bool views_file() const override { return false; }
  };
  const ForeignWeight foreign;
  std::vector<float> x(64, 1.0f), y(64);
  CpuBackend backend(1);
  EXPECT_DEATH(backend.rmsnorm(x.data(), foreign, 1, 1e-6f, y.data()), "prepared for elsewhere");
  std::vector<float> w(64, 1.0f);
  auto own = backend.prepare_norm({w.data(), 64});
  ASSERT_TRUE(own.ok());
  backend.rmsnorm(x.data(), *own.value(), 1, 1e-6f, y.data());  // its own: runs
  EXPECT_FLOAT_EQ(y[0], 1.0f / std::sqrt(1.0f + 1e-6f));
}

// The CPU backend repacks Q4_K/Q5_K/Q6_K/Q8_0 matrices at load (engine/cpu/prepared_weight.h);
// POPPER_REPACK=0 keeps the file's layout (the reference path). The packed kernels and the file
// layout's quantised dots both give the scalar reference's bits (packed_matmul_test), and every
// other op is shared, so the two paths' logits are identical, bit for bit, at every step. Not a
// float bound: a last-bit difference in one matmul can move a requantised int8 level of the next
// layer's input and, through a routing near-tie, a logit by 2 (the tiny MoE Q4_K_M did, while
// the file layout's dots still summed in their own order).
constexpr float kRepackLogitTolerance = 0.0f;

TEST(RepackedWeights, LogitsAndGreedyTokensMatchTheFileLayout) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_010");
  constexpr int64_t kSteps = 12;
  for (const testing::TinyModelSpec spec : {testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M},
                                            testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ8_0},
                                            testing::TinyModelSpec{SynthArch::kQwen3, SynthQuant::kQ4_K_M}}) {
    // Two loads of one file: prepared weights are kept per model and device.
    auto packed_model = Model::load(testing::tiny_model_path(spec));
    auto file_model = Model::load(testing::tiny_model_path(spec));
    ASSERT_TRUE(packed_model.ok() && file_model.ok());
    CpuBackend packed(2);
    ::setenv("POPPER_REPACK", "0", 1);
    CpuBackend reference(2);
    ::unsetenv("POPPER_REPACK");
    auto pw = packed_model.value()->weights_on(packed);
    auto fw = file_model.value()->weights_on(reference);
    ASSERT_TRUE(pw.ok() && fw.ok());
    // The packed backend really holds copies of its own; the reference views the file.
    int copies = 0, reference_copies = 0;
    pw.value()->for_each_with_file(packed_model.value()->weights(), [&](WeightRef h, const auto&) {
      copies += h != nullptr && !h->views_file();
    });
    fw.value()->for_each_with_file(file_model.value()->weights(), [&](WeightRef h, const auto&) {
      reference_copies += h != nullptr && !h->views_file();
    });
    EXPECT_GT(copies, 0) << spec.name();
    EXPECT_EQ(reference_copies, 0) << spec.name();

    const int64_t n_vocab = packed_model.value()->config().n_vocab;
    SessionOptions so;
    so.capacity = 64;
    Session a(*packed_model.value(), packed, so), b(*file_model.value(), reference, so);
    std::vector<int32_t> prompt = test_prompt(9, n_vocab, 3);
    std::vector<float> la(static_cast<size_t>(n_vocab)), lb(static_cast<size_t>(n_vocab));
    ASSERT_TRUE(a.forward(prompt, la.data()).ok());
    ASSERT_TRUE(b.forward(prompt, lb.data()).ok());
    float worst = 0.0f;
    for (int64_t step = 0; step < kSteps; ++step) {
      worst = std::max(worst, max_abs_diff(la, lb));
      const auto next = int32_t(std::max_element(la.begin(), la.end()) - la.begin());
      ASSERT_EQ(next, int32_t(std::max_element(lb.begin(), lb.end()) - lb.begin()))
          << spec.name() << " step " << step;
      ASSERT_TRUE(a.forward({&next, 1}, la.data()).ok());
      ASSERT_TRUE(b.forward({&next, 1}, lb.data()).ok());
    }
    RecordProperty("max_abs_logit_diff_" + spec.name(), std::to_string(worst));
    std::printf("%s: packed vs file layout, worst |logit diff| %.3g (bound %.3g)\n", spec.name().c_str(),
                worst, kRepackLogitTolerance);
    EXPECT_LE(worst, kRepackLogitTolerance) << spec.name();
  }
}

// --- attention / RoPE ---------------------------------------------------------------------

// Plain causal attention, one head at a time, in double.
std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, int64_t n_tokens, int64_t pos0,
                                   int64_t n_head, int64_t n_head_kv, int64_t hd, bool f16) {
  auto kv = [&](const std::vector<float>& m, int64_t p, int64_t kvh, int64_t i) {
    float x = m[(p * n_head_kv + kvh) * hd + i];
    return double(f16 ? fp16_to_f32(f32_to_fp16(x)) : x);
  };
  std::vector<float> out(n_tokens * n_head * hd);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / (n_head / n_head_kv);
      const int64_t n_kv = pos0 + t + 1;
      std::vector<double> s(n_kv);
      double max = -1e300;
      for (int64_t j = 0; j < n_kv; ++j) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) d += double(q[(t * n_head + h) * hd + i]) * kv(k, j, kvh, i);
        s[j] = d / std::sqrt(double(hd));
        max = std::max(max, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - max));
      for (int64_t i = 0; i < hd; ++i) {
        double o = 0;
        for (int64_t j = 0; j < n_kv; ++j) o += s[j] / sum * kv(v, j, kvh, i);
        out[(t * n_head + h) * hd + i] = float(o);
      }
    }
  }
  return out;
}

TEST(Attention, BatchedGqaEqualsAPlainPerHeadLoop) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_004");
  const int64_t n_head = 8, n_head_kv = 2, hd = 64, total = 37;
  Rng rng(17);
  std::vector<float> q(total * n_head * hd), k(total * n_head_kv * hd), v(total * n_head_kv * hd);
  for (auto* m : {&q, &k, &v})
    for (auto& x : *m) x = rng.normal();
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    for (int threads : {1, 2}) {
      CpuBackend backend(threads);
      auto made = backend.make_kv_cache({1, n_head_kv, hd, 48, type});
      ASSERT_TRUE(made.ok()) << made.message();
      KvCache& cache = *made.value();
      const AttentionShape shape{n_head, n_head_kv, hd, 1.0f / std::sqrt(float(hd))};
      // A prefix of 30 positions as one batch, then 7 more in a second batch at pos0 = 30.
      std::vector<float> out(total * n_head * hd);
      ASSERT_TRUE(backend.store_kv(cache, 0, 0, 30, k.data(), v.data()).ok());
      backend.attention(cache, 0, q.data(), 30, 0, shape, out.data());
      ASSERT_TRUE(
          backend.store_kv(cache, 0, 30, 7, k.data() + 30 * n_head_kv * hd, v.data() + 30 * n_head_kv * hd)
              .ok());
      backend.attention(cache, 0, q.data() + 30 * n_head * hd, 7, 30, shape, out.data() + 30 * n_head * hd);
      const auto want = naive_attention(q, k, v, total, 0, n_head, n_head_kv, hd, type == KvType::kF16);
      EXPECT_LE(max_abs_diff(out, want), kAttentionTolerance) << kv_type_name(type) << " threads " << threads;
    }
  }
}

TEST(Attention, StoreRefusesPositionsPastCapacity) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_003");
  CpuBackend backend(1);
  auto made = backend.make_kv_cache({2, 2, 64, 8, KvType::kF32});
  ASSERT_TRUE(made.ok()) << made.message();
  KvCache& cache = *made.value();
  std::vector<float> kv(3 * 128, 1.0f);
  EXPECT_TRUE(backend.store_kv(cache, 1, 5, 3, kv.data(), kv.data()).ok());
  Status s = backend.store_kv(cache, 1, 6, 3, kv.data(), kv.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("capacity 8"), std::string::npos) << s.message();
}

TEST(Rope, NeoxPairsRotateByPositionTimesBasePower) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_005");
  const int64_t hd = 64, n_heads = 3, n_tokens = 5, pos0 = 1000;
  const float base = 1e6f;
  Rng rng(5);
  std::vector<float> x(n_tokens * n_heads * hd);
  for (auto& e : x) e = rng.normal();
  std::vector<float> got = x;
  CpuBackend backend(1);
  backend.rope(got.data(), n_tokens, n_heads, hd, pos0, base);
  float worst = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double theta = double(pos0 + t) * std::pow(double(base), -2.0 * double(i) / double(hd));
        const float* in = x.data() + (t * n_heads + h) * hd;
        const double a = in[i], b = in[i + hd / 2];
        const float* o = got.data() + (t * n_heads + h) * hd;
        worst = std::max<float>(worst, std::fabs(float(a * std::cos(theta) - b * std::sin(theta)) - o[i]));
        worst = std::max<float>(worst,
                                std::fabs(float(a * std::sin(theta) + b * std::cos(theta)) - o[i + hd / 2]));
      }
    }
  }
  // theta is pos * inv_freq in float as transformers computes it (powf, a division, one
  // multiply): at position ~1000 a few roundings of ~6e-8 are ~1e-4 rad; cos/sin in float and
  // |x| < 6 stay well inside 1e-2 (ggml's repeated multiply, ~1e-3 rad there, did too).
  EXPECT_LE(worst, 1e-2f);
  // Position 0 is the identity.
  std::vector<float> zero = x;
  backend.rope(zero.data(), 1, n_heads, hd, 0, base);
  for (int64_t i = 0; i < n_heads * hd; ++i) EXPECT_EQ(zero[i], x[i]);
}

}  // namespace
}  // namespace popper
