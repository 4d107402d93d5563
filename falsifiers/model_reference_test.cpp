// The independent reference (contracts/qwen3-moe-forward-v1.yaml FALSIFY-..._FORWARD_V1_001):
// our logits on the tiny synthetic models agree with llama.cpp's on the same GGUF bytes.
//
// The dumps in falsifiers/fixtures/reference/ come from scripts/make_reference_logits.py
// (llama-cpp-python). Each is keyed by the sha256 of the file it was made from; this test
// rebuilds that file with synth_model, checks the digest (so a synth change cannot silently
// compare different models), runs 32 greedy steps from the same prompt and compares.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/sha256.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

// F32 weights, f16 KV cache in both engines; llama.cpp also rounds Q and the softmax weights
// to f16 for its f16-KV products (ggml's F16 vec_dot_type), which alone moves its logits
// (|logit| < 8) by 2.9e-3 from exact f64 math, while Popper's F32 path sits 3e-6 from it.
constexpr float kF32LogitBound = 5e-3f;

std::filesystem::path fixture_dir() { return std::filesystem::path(POPPER_SOURCE_DIR) / "falsifiers/fixtures/reference"; }

std::vector<std::filesystem::path> fixtures() {
  std::vector<std::filesystem::path> out;
  if (std::filesystem::exists(fixture_dir())) {
    for (const auto& e : std::filesystem::directory_iterator(fixture_dir())) {
      if (e.path().extension() == ".json") out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

class LlamaCppReference : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(LlamaCppReference, GreedyTop1IdenticalEveryStepAndLogitsWithinBound) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_001");
  std::ifstream in(GetParam());
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded()) << GetParam() << ": not valid JSON";
  const auto synth = doc.at("synth").get<std::vector<std::string>>();
  ASSERT_EQ(synth.size(), 8u);
  SynthOptions o;
  auto arch = parse_synth_arch(synth[1]);
  auto quant = parse_synth_quant(synth[5]);
  ASSERT_TRUE(arch.ok() && quant.ok());
  o.arch = arch.value();
  o.preset = synth[3];
  o.quant = quant.value();
  o.seed = std::stoull(synth[7]);
  const std::string path = (testing::test_temp_dir() / (GetParam().stem().string() + ".gguf")).string();
  ASSERT_TRUE(synth_model(o, path).ok());
  auto digest = sha256_file(path);
  ASSERT_TRUE(digest.ok());
  ASSERT_EQ(digest.value(), doc.at("sha256").get<std::string>())
      << "synth_model no longer makes the file the reference was dumped from; rerun "
         "scripts/make_reference_logits.py";

  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.message();
  const Model& m = *model.value();
  const auto prompt = doc.at("prompt").get<std::vector<int32_t>>();
  const auto want_tokens = doc.at("tokens").get<std::vector<int32_t>>();
  ASSERT_EQ(o.quant, SynthQuant::kF32) << "only F32 dumps carry this claim (see scripts/make_reference_logits.py)";
  const float bound = kF32LogitBound;
  CpuBackend backend(1);
  SessionOptions so;
  so.capacity = int64_t(prompt.size() + want_tokens.size()) + 1;
  so.kv_type = doc.value("kv_type", "f16") == "f16" ? KvType::kF16 : KvType::kF32;
  Session s(m, backend, so);
  std::vector<float> logits(m.config().n_vocab);
  ASSERT_TRUE(s.forward(prompt, logits.data()).ok());
  float worst = 0;
  for (size_t step = 0; step < want_tokens.size(); ++step) {
    const int32_t tok = argmax_token(logits);
    ASSERT_EQ(tok, want_tokens[step]) << "top-1 differs at step " << step;
    const std::string key = std::to_string(step);
    if (doc.at("logits").contains(key)) {
      const auto ref = doc.at("logits").at(key).get<std::vector<float>>();
      const float d = testing::max_abs_diff(logits, ref);
      worst = std::max(worst, d);
      EXPECT_LE(d, bound) << "step " << step;
    }
    ASSERT_TRUE(s.forward({&tok, 1}, logits.data()).ok());
  }
  RecordProperty("max_abs_logit_diff", std::to_string(worst));
  std::printf("%s: 32/32 top-1 identical, max |logit diff| %.3g (bound %.0e)\n", GetParam().stem().c_str(), worst,
              bound);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaCppReference, ::testing::ValuesIn(fixtures()), [](const auto& info) {
  std::string n = info.param.stem().string();
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

TEST(LlamaCppReference, FixturesExistForEveryTinyModelKind) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_001");
  for (const char* name : {"qwen3moe-f32", "qwen3-f32"}) {
    EXPECT_TRUE(std::filesystem::exists(fixture_dir() / (std::string(name) + ".json"))) << name;
  }
}

}  // namespace
}  // namespace popper
