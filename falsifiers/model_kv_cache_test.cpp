// Falsifiers for the KV cache (contracts/qwen3-moe-kvcache-v1.yaml): the cached path gives the
// same greedy tokens as full recompute, its logits agree at every step, a full cache ends with
// context_full, truncation restores an earlier state, and the dense-FFN guard fires.
#include <gtest/gtest.h>

#include "engine/model/ffn_guard.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

using testing::max_abs_diff;
using testing::test_prompt;
using testing::tiny_model;
using testing::TinyModelSpec;

// F32 weights and cache: cached and recomputed logits run the same kernels on the same values,
// and differ at most by float accumulation order; 1e-4 is ~1e-5 relative to logits of size ~10.
constexpr float kF32LogitTolerance = 1e-4f;
constexpr int64_t kSteps = 32;

const TinyModelSpec kModels[] = {
    {SynthArch::kQwen3Moe, SynthQuant::kF32},  {SynthArch::kQwen3Moe, SynthQuant::kQ8_0},
    {SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M}, {SynthArch::kQwen3, SynthQuant::kF32},
    {SynthArch::kQwen3Moe, SynthQuant::kF32, 7},
};

class KvCacheEquivalence : public ::testing::TestWithParam<TinyModelSpec> {};

TEST_P(KvCacheEquivalence, GreedyTokensMatchFullRecomputeFor32Steps) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_001");
  const Model& model = tiny_model(GetParam());
  CpuBackend backend(1);
  for (uint64_t salt : {1u, 2u, 3u}) {
    const auto prompt = test_prompt(3 + 5 * salt, model.config().n_vocab, salt);
    GenerateOptions opt;
    opt.max_tokens = kSteps;
    auto cached = generate(model, backend, prompt, opt);
    opt.use_cache = false;
    auto full = generate(model, backend, prompt, opt);
    ASSERT_TRUE(cached.ok()) << cached.message();
    ASSERT_TRUE(full.ok()) << full.message();
    EXPECT_EQ(cached->tokens, full->tokens) << "prompt salt " << salt;
    EXPECT_EQ(cached->tokens.size(), size_t(kSteps));
    EXPECT_EQ(cached->finish, FinishReason::kLength);
  }
}

TEST_P(KvCacheEquivalence, SeededSamplingMatchesFullRecompute) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_001");
  const Model& model = tiny_model(GetParam());
  CpuBackend backend(1);
  const auto prompt = test_prompt(9, model.config().n_vocab, 11);
  GenerateOptions opt;
  opt.max_tokens = 16;
  opt.sampling = {0.8f, 40, 0.95f, 1234};
  auto cached = generate(model, backend, prompt, opt);
  opt.use_cache = false;
  auto full = generate(model, backend, prompt, opt);
  ASSERT_TRUE(cached.ok() && full.ok());
  EXPECT_EQ(cached->tokens, full->tokens);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, KvCacheEquivalence, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return info.param.name(); });

// Steps the cached session and full recompute side by side on the F32 models and compares the
// logits at every step.
TEST(KvCache, F32LogitsAgreeWithFullRecomputeAtEveryStep) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_002");
  for (SynthArch arch : {SynthArch::kQwen3Moe, SynthArch::kQwen3}) {
    const Model& model = tiny_model({arch, SynthQuant::kF32});
    CpuBackend backend(1);
    std::vector<int32_t> seq = test_prompt(6, model.config().n_vocab, 5);
    SessionOptions so;
    so.capacity = int64_t(seq.size()) + kSteps;
    Session session(model, backend, so);
    std::vector<float> logits(model.config().n_vocab);
    ASSERT_TRUE(session.forward(seq, logits.data()).ok());
    float worst = 0.0f;
    for (int64_t step = 0; step < kSteps; ++step) {
      auto full = forward_full(model, backend, seq);
      ASSERT_TRUE(full.ok());
      worst = std::max(worst, max_abs_diff(logits, full.value()));
      const int32_t next = argmax_token(logits);
      ASSERT_EQ(next, argmax_token(full.value())) << "step " << step;
      seq.push_back(next);
      ASSERT_TRUE(session.forward({&next, 1}, logits.data()).ok());
    }
    RecordProperty(std::string("max_abs_logit_diff_") + synth_arch_name(arch), std::to_string(worst));
    EXPECT_LE(worst, kF32LogitTolerance) << synth_arch_name(arch);
  }
}

TEST(KvCache, F16CacheGreedyTokensMatchFullRecompute) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_001");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  CpuBackend backend(1);
  const auto prompt = test_prompt(12, model.config().n_vocab, 8);
  GenerateOptions opt;
  opt.max_tokens = kSteps;
  opt.kv_type = KvType::kF16;
  auto cached = generate(model, backend, prompt, opt);
  opt.use_cache = false;
  auto full = generate(model, backend, prompt, opt);
  ASSERT_TRUE(cached.ok() && full.ok());
  EXPECT_EQ(cached->tokens, full->tokens);
}

TEST(KvCache, FullCacheEndsWithContextFullNotAnOverflow) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_003");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kF32});
  CpuBackend backend(1);
  const auto prompt = test_prompt(10, model.config().n_vocab, 4);
  for (bool use_cache : {true, false}) {
    GenerateOptions opt;
    opt.max_tokens = 100;
    opt.n_ctx = 15;
    opt.use_cache = use_cache;
    auto r = generate(model, backend, prompt, opt);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->finish, FinishReason::kContextFull);
    EXPECT_EQ(r->tokens.size(), 5u) << "every context position used, none past it";
  }
  // The session itself refuses a forward that would pass capacity, and writes nothing.
  SessionOptions so;
  so.capacity = 12;
  Session session(model, backend, so);
  std::vector<float> logits(model.config().n_vocab);
  ASSERT_TRUE(session.forward(prompt, logits.data()).ok());
  const std::vector<int32_t> three = {1, 2, 3};
  Status s = session.forward(three, logits.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("KV cache full"), std::string::npos) << s.message();
  EXPECT_EQ(session.cache().n_pos(), 10);
}

TEST(KvCache, TruncateThenContinueEqualsAFreshSession) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_004");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kF32});
  CpuBackend backend(1);
  const auto a = test_prompt(8, model.config().n_vocab, 21);
  const auto b = test_prompt(6, model.config().n_vocab, 22);
  const auto c = test_prompt(5, model.config().n_vocab, 23);
  SessionOptions so;
  so.capacity = 64;
  Session reused(model, backend, so);
  std::vector<float> l1(model.config().n_vocab), l2(model.config().n_vocab);
  ASSERT_TRUE(reused.forward(a, l1.data()).ok());
  ASSERT_TRUE(reused.forward(b, l1.data()).ok());
  reused.cache().truncate(int64_t(a.size()));
  ASSERT_TRUE(reused.forward(c, l1.data()).ok());
  Session fresh(model, backend, so);
  std::vector<int32_t> ac = a;
  ac.insert(ac.end(), c.begin(), c.end());
  ASSERT_TRUE(fresh.forward(ac, l2.data()).ok());
  EXPECT_LE(max_abs_diff(l1, l2), kF32LogitTolerance);
}

TEST(FfnGuard, DenseFfnOnAnMoeModelFailsWithTheFixedMessage) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_006");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kF32});
  CpuBackend backend(1);
  SessionOptions so;
  so.capacity = 8;
  so.force_dense_ffn = true;  // the negative control
  Session session(model, backend, so);
  std::vector<float> logits(model.config().n_vocab);
  const std::vector<int32_t> prompt = {1, 2, 3};
  const uint64_t dense_before = model.counters().dense.load();
  Status s = session.forward(prompt, logits.data());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), std::string(kDenseFfnOnMoeGuardMessage));
  EXPECT_EQ(model.counters().dense.load(), dense_before) << "the guard runs before any dense work";
}

TEST(FfnGuard, DispatchCountersShowOnlyTheArchsFfnPath) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_006");
  CpuBackend backend(1);
  const std::vector<int32_t> prompt = {5, 6, 7};
  for (SynthArch arch : {SynthArch::kQwen3Moe, SynthArch::kQwen3}) {
    const Model& model = tiny_model({arch, SynthQuant::kF32});
    const uint64_t dense0 = model.counters().dense.load(), moe0 = model.counters().moe.load();
    ASSERT_TRUE(forward_full(model, backend, prompt).ok());
    const uint64_t layers = uint64_t(model.config().n_layer);
    if (arch == SynthArch::kQwen3Moe) {
      EXPECT_EQ(model.counters().dense.load() - dense0, 0u);
      EXPECT_EQ(model.counters().moe.load() - moe0, layers);
    } else {
      EXPECT_EQ(model.counters().dense.load() - dense0, layers);
      EXPECT_EQ(model.counters().moe.load() - moe0, 0u);
    }
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_005");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kF32});
  CpuBackend backend(1);
  const auto prompt = test_prompt(5, model.config().n_vocab, 31);
  GenerateOptions opt;
  opt.max_tokens = 24;
  opt.sampling = {1.5f, 0, 1.0f, 42};
  auto a = generate(model, backend, prompt, opt);
  auto b = generate(model, backend, prompt, opt);
  opt.sampling.seed = 43;
  auto c = generate(model, backend, prompt, opt);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Sampler, GreedyBreaksTiesToTheLowestIdAndTopKOneIsGreedy) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_005");
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  EXPECT_EQ(argmax_token(logits), 1);
  Sampler top1({1.0f, 1, 1.0f, 9});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1.sample(logits), 1);
  // top_p tiny keeps only the most likely token.
  Sampler nucleus({1.0f, 0, 1e-6f, 9});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(nucleus.sample(logits), 1);
  EXPECT_FALSE(validate({-1.0f, 0, 1.0f, 0}).ok());
  EXPECT_FALSE(validate({1.0f, 0, 0.0f, 0}).ok());
}

TEST(Generate, StopIdEndsGenerationWithReasonStop) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_KVCACHE_V1_005");
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kF32});
  CpuBackend backend(1);
  const auto prompt = test_prompt(7, model.config().n_vocab, 41);
  GenerateOptions opt;
  opt.max_tokens = 12;
  auto free_run = generate(model, backend, prompt, opt);
  ASSERT_TRUE(free_run.ok());
  opt.stop_ids = {free_run->tokens[4]};
  auto stopped = generate(model, backend, prompt, opt);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->finish, FinishReason::kStop);
  const auto first = std::find(free_run->tokens.begin(), free_run->tokens.end(), free_run->tokens[4]);
  EXPECT_EQ(stopped->tokens, std::vector<int32_t>(free_run->tokens.begin(), first));
}

}  // namespace
}  // namespace popper
