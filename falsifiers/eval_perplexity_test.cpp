// Falsifiers for engine/eval (`popper perplexity`): llama-perplexity's scoring, checked against
//  - figures computed by hand: a model whose logits are all zero has PPL = n_vocab exactly, and
//    an independent recomputation (forward_full per prefix, log-softmax in double) of a real
//    model's chunks;
//  - llama.cpp's formulas on hand-made inputs (the 16-bit base coding, percentiles, uncertainty);
//  - KL's own properties: ~0 against itself, ordered Q8_0 < Q4_K_M against F32, large against an
//    unrelated model (the negative control), the same against a saved base file as against the
//    base GGUF it came from;
//  - llama-perplexity's own figures on the same files (falsifiers/fixtures/eval/llama_perplexity.json,
//    scripts/make_quant_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/convert/quantize.h"
#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "engine/eval/base_logits.h"
#include "engine/eval/perplexity.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/tokenizer/tokenizer.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

namespace fs = std::filesystem;
using eval::PerplexityJob;
using testing::test_temp_dir;
using testing::tiny_model_path;

const testing::TinyModelSpec kMoeF32{SynthArch::kQwen3Moe, SynthQuant::kF32};

std::string fixture_text() {
  return std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/eval/synthetic.txt";
}

PerplexityJob job_for(const std::string& model, int64_t n_ctx, int64_t chunks) {
  PerplexityJob j;
  j.model = model;
  j.text = fixture_text();
  j.n_ctx = n_ctx;
  j.n_chunks = chunks;
  j.n_threads = 1;  // ctest runs two test processes on two cores
  return j;
}

eval::PerplexityResult run(const PerplexityJob& j) {
  auto r = eval::evaluate_perplexity(j);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : eval::PerplexityResult{};
}

// The tiny F32 model with output.weight all zeros: every logit is 0.
std::string zero_logit_model() {
  const std::string path = (test_temp_dir() / "zero-logits.gguf").string();
  if (fs::exists(path)) return path;
  auto f = GgufFile::open(tiny_model_path(kMoeF32));
  EXPECT_TRUE(f.ok());
  GgufWriter w;
  for (const auto& kv : (*f)->metadata()) w.add_kv(kv.key, kv.value);
  for (const auto& t : (*f)->tensors()) {
    const uint8_t* data = (*f)->tensor_data(t);
    const bool zero = t.name == "output.weight";
    w.add_tensor(t.name, t.type, t.dims, [data, zero](std::span<uint8_t> o) {
      if (!zero) std::memcpy(o.data(), data, o.size());
      return Status::success();
    });
  }
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

TEST(Perplexity, UniformLogitsGiveExactlyTheVocabularySize) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  const auto r = run(job_for(zero_logit_model(), 64, 3));
  EXPECT_EQ(r.n_chunk, 3);
  EXPECT_EQ(r.n_scored, 3 * (64 - 1 - 32));
  // exp(mean(log 2048)): one rounding of log and one of exp.
  EXPECT_NEAR(r.ppl.value, 2048.0, 2048.0 * 1e-12);
  // var = mean(nll^2) - mean(nll)^2 cancels to rounding noise only.
  EXPECT_LT(r.ppl.uncertainty, 1e-3);
}

// The same scores recomputed without the chunk machinery: each scored position's logits from a
// full recompute of its prefix, log-softmax in double. float logits make the two differ by
// rounding only.
constexpr double kHandPplRelTol = 1e-5;

TEST(Perplexity, MatchesAnIndependentRecomputationOfEachChunk) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  const int64_t n_ctx = 24, chunks = 2;
  PerplexityJob j = job_for(tiny_model_path(kMoeF32), n_ctx, chunks);
  j.kv_type = KvType::kF32;
  const auto r = run(j);

  const Model& model = testing::tiny_model(kMoeF32);
  auto tokenizer = Tokenizer::from_gguf(model.file());
  ASSERT_TRUE(tokenizer.ok());
  const std::vector<int32_t> tokens = tokenizer->encode(read_file(fixture_text()).value(), false);
  CpuBackend backend(1);
  double nll = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int32_t* chunk = tokens.data() + c * n_ctx;
    for (int64_t pos = n_ctx / 2; pos < n_ctx - 1; ++pos) {
      auto logits = forward_full(model, backend, std::span<const int32_t>(chunk, pos + 1), KvType::kF32);
      ASSERT_TRUE(logits.ok()) << logits.message();
      double max = -INFINITY, sum = 0;
      for (float v : *logits) max = std::max(max, double(v));
      for (float v : *logits) sum += std::exp(double(v) - max);
      nll += -(double((*logits)[chunk[pos + 1]]) - max - std::log(sum));
      ++count;
    }
  }
  ASSERT_EQ(count, r.n_scored);
  const double want = std::exp(nll / double(count));
  EXPECT_NEAR(r.ppl.value, want, want * kHandPplRelTol);
  EXPECT_NEAR(r.chunk_ppl.back(), r.ppl.value, 1e-9 * want);
}

TEST(Perplexity, TextTooShortForTwoChunksIsAnErrorSayingHowManyTokensAreNeeded) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  PerplexityJob j = job_for(tiny_model_path(kMoeF32), 8192, -1);  // the text has ~9000 tokens
  auto r = eval::evaluate_perplexity(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("needs at least 16384"), std::string::npos) << r.message();
}

// ---- llama.cpp's formulas on hand-made inputs --------------------------------------------------

TEST(Scoring, BaseRecordCodesLogProbsWithinSixteenNatsOfTheTop) {
  // logits 0, -1, -20: log-probs l - log(1 + e^-1 + e^-20); the last is below max - 16 and codes
  // as the minimum.
  const std::vector<float> logits = {0.f, -1.f, -20.f};
  std::vector<uint16_t> rec(static_cast<size_t>(eval::base_record_u16s(3)));
  const double nll = eval::encode_base_record(logits, 1, rec.data());
  const double lse = std::log(1 + std::exp(-1.0) + std::exp(-20.0));
  EXPECT_NEAR(nll, 1 + lse, 1e-6);
  float head[2];
  std::memcpy(head, rec.data(), sizeof head);
  EXPECT_FLOAT_EQ(head[0], 16.f / 65535.f);  // scale
  EXPECT_NEAR(head[1], -16 - lse, 1e-6);     // min log-prob
  EXPECT_EQ(rec[4], 65535);                  // the top
  EXPECT_EQ(rec[5], static_cast<uint16_t>(std::lround(15 * 65535.0 / 16)));
  EXPECT_EQ(rec[6], 0);
  EXPECT_EQ(rec[7], 0);  // padding to an even count
}

TEST(Scoring, KlOfADistributionAgainstItselfIsZeroAndGrowsWithTheShift) {
  std::vector<float> base = {2.f, 1.f, 0.f, -1.f};
  std::vector<uint16_t> rec(static_cast<size_t>(eval::base_record_u16s(4)));
  eval::encode_base_record(base, 0, rec.data());
  eval::KlSums same, shifted;
  same.add(base, rec.data(), 0);
  std::vector<float> q = {1.f, 2.f, 0.f, -1.f};
  shifted.add(q, rec.data(), 0);
  EXPECT_NEAR(same.sum_kld, 0.0, 1e-4);  // only the 16-bit coding of the base
  EXPECT_EQ(same.n_same_top, 1);
  // KL(p || q) for the swapped top pair, in double.
  double z = 0, kl = 0;
  for (float v : base) z += std::exp(double(v));
  double zq = 0;
  for (float v : q) zq += std::exp(double(v));
  for (size_t i = 0; i < 4; ++i)
    kl += std::exp(base[i]) / z * ((base[i] - std::log(z)) - (q[i] - std::log(zq)));
  EXPECT_NEAR(shifted.sum_kld, kl, 1e-4);
  EXPECT_EQ(shifted.n_same_top, 0);
}

TEST(Scoring, UncertaintyAndPercentilesFollowLlamaCpp) {
  double sum = 0, sum2 = 0;
  for (int i = 1; i <= 20; ++i) {
    sum += i;
    sum2 += i * i;
  }
  const eval::Estimate e = eval::mean_and_uncertainty(sum, sum2, 20);
  EXPECT_DOUBLE_EQ(e.value, 10.5);
  EXPECT_NEAR(e.uncertainty, std::sqrt(33.25 / 19), 1e-12);
  EXPECT_EQ(eval::mean_and_uncertainty(sum, sum2, 10).uncertainty, 0.0)
      << "no uncertainty from 10 values or fewer";
  const std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  EXPECT_FLOAT_EQ(eval::percentile(v, 0.5f), 6.f);
  EXPECT_FLOAT_EQ(eval::percentile(v, 0.95f), 10.5f);
  EXPECT_FLOAT_EQ(eval::percentile(v, 0.f), 1.f);
}

// ---- KL divergence against a base ------------------------------------------------------------

std::string quantised(QuantFtype f) { return testing::quantized_model_path(kMoeF32, f); }

eval::KlSummary kl_against(const std::string& model, const std::string& base) {
  PerplexityJob j = job_for(model, 128, 4);
  j.kl_base = base;
  const auto r = run(j);
  EXPECT_TRUE(r.kl.has_value());
  return r.kl.value_or(eval::KlSummary{});
}

TEST(KlDivergence, ModelAgainstItselfIsZeroWithTheSameTopToken) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  const auto k = kl_against(tiny_model_path(kMoeF32), tiny_model_path(kMoeF32));
  EXPECT_EQ(k.count, 4 * 63);
  // The base's log-probs are coded in 16 bits over 16 nats: at most 1.2e-4 off each.
  EXPECT_LT(std::fabs(k.kld.value), 2e-4);
  EXPECT_GE(k.same_top.value, 0.99) << "only 16-bit coding ties may flip the top";
  EXPECT_NEAR(k.ppl.value, k.ppl_base.value, 1e-3 * k.ppl.value);
}

TEST(KlDivergence, Q4KMDivergesMoreThanQ8AndAnUnrelatedModelMostOfAll) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  const std::string base = tiny_model_path(kMoeF32);
  const auto q8 = kl_against(quantised(QuantFtype::kQ8_0), base);
  const auto q4 = kl_against(quantised(QuantFtype::kQ4_K_M), base);
  // Negative control: another seed's weights, same shapes and vocabulary.
  const auto other = kl_against(tiny_model_path({SynthArch::kQwen3Moe, SynthQuant::kF32, 7}), base);
  RecordProperty("metric.kld_q8_0", std::to_string(q8.kld.value));
  RecordProperty("metric.kld_q4_k_m", std::to_string(q4.kld.value));
  EXPECT_GT(q8.kld.value, 0.0);
  EXPECT_LT(q8.kld.value, q4.kld.value);
  EXPECT_LT(q4.kld.value, other.kld.value);
  EXPECT_GT(q8.same_top.value, q4.same_top.value);
  EXPECT_LT(other.same_top.value, 0.5);
}

TEST(KlDivergence, SavedBaseFileGivesTheSameFiguresAsTheBaseModel) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  const std::string base_file = (test_temp_dir() / "f32.kld").string();
  PerplexityJob save = job_for(tiny_model_path(kMoeF32), 128, 4);
  save.save_kl_base = base_file;
  const auto saved = run(save);
  auto reader = eval::BaseLogitsReader::open(base_file);
  ASSERT_TRUE(reader.ok()) << reader.message();
  EXPECT_EQ((*reader)->n_ctx(), 128);
  EXPECT_EQ((*reader)->n_chunk(), 4);
  const auto from_model = kl_against(quantised(QuantFtype::kQ8_0), tiny_model_path(kMoeF32));
  const auto from_file = kl_against(quantised(QuantFtype::kQ8_0), base_file);
  EXPECT_EQ(from_file.kld.value, from_model.kld.value);
  EXPECT_EQ(from_file.same_top.value, from_model.same_top.value);
  EXPECT_EQ(from_file.ppl_base.value, from_model.ppl_base.value);
  EXPECT_NEAR(from_file.ppl_base.value, saved.ppl.value, 1e-4 * saved.ppl.value);
}

TEST(KlDivergence, CorruptBaseFileIsAnErrorNamingIt) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  const std::string bad = (test_temp_dir() / "bad.kld").string();
  ASSERT_TRUE(write_file_atomic(bad, std::string("_logits_") + std::string(12, '\x01')).ok());
  PerplexityJob j = job_for(tiny_model_path(kMoeF32), 128, 4);
  j.kl_base = bad;
  auto r = eval::evaluate_perplexity(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find(bad), std::string::npos) << r.message();
}

// ---- llama-perplexity's figures on the same files ----------------------------------------------

// F32 logits agree with llama.cpp's within ~5e-3 (FALSIFY-QWEN3_MOE_FORWARD_V1_001), which moves
// a mean nll by far less: relative PPL differences stay under 1e-3.
constexpr double kPplRelTolF32 = 1e-3;

TEST(Perplexity, MatchesLlamaPerplexityOnTheSameFiles) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-PERPLEXITY");
  std::ifstream in(std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/eval/llama_perplexity.json");
  ASSERT_TRUE(in)
      << "falsifiers/fixtures/eval/llama_perplexity.json missing (scripts/make_quant_fixtures.py)";
  const auto fx = nlohmann::json::parse(in);
  const auto& f32 = fx["models"]["tiny-qwen3moe-f32"];
  ASSERT_EQ(sha256_file(tiny_model_path(kMoeF32)).value(), f32["sha256"]);
  const auto r = run(job_for(tiny_model_path(kMoeF32), fx["n_ctx"], fx["chunks"]));
  // The same tokens as llama.cpp's tokenizer made of the text.
  const Model& model = testing::tiny_model(kMoeF32);
  auto tokenizer = Tokenizer::from_gguf(model.file());
  const auto tokens = tokenizer->encode(read_file(fixture_text()).value(), false);
  const auto want_tokens = fx["tokens"].get<std::vector<int32_t>>();
  ASSERT_GE(tokens.size(), want_tokens.size());
  EXPECT_TRUE(std::equal(want_tokens.begin(), want_tokens.end(), tokens.begin()));
  const double want = f32["ppl"];
  RecordProperty("metric.ppl_popper", std::to_string(r.ppl.value));
  RecordProperty("metric.ppl_llama_cpp", std::to_string(want));
  EXPECT_NEAR(r.ppl.value, want, want * kPplRelTolF32);
  EXPECT_NEAR(r.ppl.uncertainty, f32["ppl_uncertainty"].get<double>(),
              0.05 * f32["ppl_uncertainty"].get<double>());
}

}  // namespace
}  // namespace popper
