// Falsifiers for the synthetic model builder: llama.cpp's names, shapes and Q4_K_M recipe,
// byte-for-byte determinism, and weights that make a usable model (finite, routing spread).
#include "engine/synth/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "engine/core/sha256.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/quant/traits.h"
#include "engine/synth/tensor_plan.h"

namespace popper {
namespace {

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "popper_synth_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string build(SynthArch arch, SynthQuant quant, uint64_t seed, const std::string& name) {
  SynthOptions o;
  o.arch = arch;
  o.quant = quant;
  o.seed = seed;
  std::string path = temp_path(name);
  Status st = synth_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

TEST(SynthPlan, ThirtyBA3BQ4KMMatchesThePublishedLayout) {
  SynthOptions o;
  o.preset = "30b-a3b";
  o.quant = SynthQuant::kQ4_K_M;
  auto shape = synth_shape(o);
  ASSERT_TRUE(shape.ok());
  auto plan = plan_tensors(SynthArch::kQwen3Moe, shape.value(), SynthQuant::kQ4_K_M);
  // llama.cpp's loader prints for Qwen3-30B-A3B Q4_K_M: f32 241, q4_K 289, q6_K 49 (579 tensors).
  std::map<GgmlType, int> counts;
  for (const auto& t : plan) counts[t.type]++;
  EXPECT_EQ(plan.size(), 579u);
  EXPECT_EQ(counts[GgmlType::F32], 241);
  EXPECT_EQ(counts[GgmlType::Q4_K], 289);
  EXPECT_EQ(counts[GgmlType::Q6_K], 49);
  auto find = [&](const std::string& name) -> const PlannedTensor& {
    auto it = std::find_if(plan.begin(), plan.end(), [&](auto& t) { return t.name == name; });
    EXPECT_NE(it, plan.end()) << name;
    return *it;
  };
  EXPECT_EQ(find("blk.0.ffn_gate_exps.weight").dims, (std::vector<int64_t>{2048, 768, 128}));
  EXPECT_EQ(find("blk.0.ffn_down_exps.weight").dims, (std::vector<int64_t>{768, 2048, 128}));
  EXPECT_EQ(find("blk.0.ffn_down_exps.weight").type, GgmlType::Q6_K);  // first eighth
  EXPECT_EQ(find("blk.6.ffn_down_exps.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(find("blk.8.attn_v.weight").type, GgmlType::Q6_K);   // (8 - 6) % 3 == 2
  EXPECT_EQ(find("blk.47.attn_v.weight").type, GgmlType::Q6_K);  // last eighth
  EXPECT_EQ(find("blk.0.attn_q.weight").dims, (std::vector<int64_t>{2048, 4096}));
  EXPECT_EQ(find("blk.0.attn_k.weight").dims, (std::vector<int64_t>{2048, 512}));
  EXPECT_EQ(find("blk.0.attn_output.weight").dims, (std::vector<int64_t>{4096, 2048}));
  EXPECT_EQ(find("blk.0.ffn_gate_inp.weight").type, GgmlType::F32);
  EXPECT_EQ(find("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(find("token_embd.weight").dims, (std::vector<int64_t>{2048, 151936}));
}

TEST(SynthPlan, UnknownPresetsAndArchPairsAreRejected) {
  SynthOptions o;
  o.preset = "70b";
  EXPECT_FALSE(synth_shape(o).ok());
  o.preset = "30b-a3b";
  o.arch = SynthArch::kQwen3;
  EXPECT_FALSE(synth_shape(o).ok());
  EXPECT_FALSE(parse_synth_quant("q4_k_s").ok());
  EXPECT_FALSE(parse_synth_arch("llama").ok());
}

TEST(SynthModel, SameArgumentsGiveIdenticalBytesAndOtherSeedsDiffer) {
  auto a = build(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M, 3, "a.gguf");
  auto b = build(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M, 3, "b.gguf");
  auto c = build(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M, 4, "c.gguf");
  EXPECT_EQ(sha256_file(a).value(), sha256_file(b).value());
  EXPECT_NE(sha256_file(a).value(), sha256_file(c).value());
}

// Reference dumps made by other engines (tokenizer and logit fixtures) are keyed to these
// digests: if one changes, every fixture must be regenerated with scripts/make_*.py.
TEST(SynthModel, TinyModelDigestsArePinned) {
  const std::map<std::string, std::pair<SynthArch, SynthQuant>> models = {
      {"tiny-qwen3moe-f32", {SynthArch::kQwen3Moe, SynthQuant::kF32}},
      {"tiny-qwen3moe-q8_0", {SynthArch::kQwen3Moe, SynthQuant::kQ8_0}},
      {"tiny-qwen3moe-q4_k_m", {SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M}},
      {"tiny-qwen3-f32", {SynthArch::kQwen3, SynthQuant::kF32}},
  };
  const std::map<std::string, std::string> pinned = {
      {"tiny-qwen3moe-f32", "5cc13841079967390df61af15dbf8b1c17a8ffeed893fb064a86158008823054"},
      {"tiny-qwen3moe-q8_0", "1ea9fc711162eefeb8bd2c1c136d9483d48aedc34a156992b7f60237ede9ae68"},
      {"tiny-qwen3moe-q4_k_m", "47497caa588b3dee4b0d1594ead6ef8d603e0c35f3399cad6e8460640f8313ac"},
      {"tiny-qwen3-f32", "fd965c136842baf599b1e33561dcb8d05c4f10af4324a5189ab5145c8ac2db39"},
  };
  for (const auto& [name, args] : models) {
    auto path = build(args.first, args.second, 0, name + ".gguf");
    EXPECT_EQ(sha256_file(path).value(), pinned.at(name)) << name;
  }
}

TEST(SynthModel, FileCarriesTheHyperParametersLlamaCppReads) {
  auto path = build(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M, 0, "meta.gguf");
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  auto u = [&](const char* key) {
    const GgufValue* v = file.value()->find(key);
    EXPECT_NE(v, nullptr) << key;
    return v ? v->as_u64().value_or(0) : 0;
  };
  EXPECT_EQ(*file.value()->find("general.architecture")->as_string(), "qwen3moe");
  EXPECT_EQ(u("qwen3moe.block_count"), 4u);
  EXPECT_EQ(u("qwen3moe.embedding_length"), 256u);
  EXPECT_EQ(u("qwen3moe.attention.head_count"), 4u);
  EXPECT_EQ(u("qwen3moe.attention.head_count_kv"), 2u);
  EXPECT_EQ(u("qwen3moe.attention.key_length"), 64u);
  EXPECT_EQ(u("qwen3moe.expert_count"), 8u);
  EXPECT_EQ(u("qwen3moe.expert_used_count"), 2u);
  EXPECT_EQ(u("qwen3moe.expert_feed_forward_length"), 256u);
  EXPECT_EQ(u("general.file_type"), 15u);
  EXPECT_EQ(*file.value()->find("tokenizer.ggml.model")->as_string(), "gpt2");
  EXPECT_EQ(*file.value()->find("tokenizer.ggml.pre")->as_string(), "qwen2");
  EXPECT_EQ(file.value()->find("tokenizer.ggml.tokens")->as_array()->size(), 2048u);
  EXPECT_NE(file.value()->find("tokenizer.chat_template"), nullptr);
  EXPECT_EQ(file.value()->tensors().size(), 3u + 4u * 12u);
  // Q4_K_M on 4 layers: use_more_bits picks layers 2 and 3 for ffn_down_exps; with 8 experts
  // llama.cpp gives attn_v / attn_k Q8_0 and attn_output Q5_K (engine/quant/recipe.h).
  EXPECT_EQ(file.value()->find_tensor("blk.1.ffn_down_exps.weight")->type, GgmlType::Q4_K);
  EXPECT_EQ(file.value()->find_tensor("blk.3.ffn_down_exps.weight")->type, GgmlType::Q6_K);
  EXPECT_EQ(file.value()->find_tensor("blk.2.attn_v.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(file.value()->find_tensor("blk.2.attn_output.weight")->type, GgmlType::Q5_K);
}

// The router of a random model could send every token to the same experts, which would leave
// most of the MoE path untested. Route each vocabulary embedding through layer 0's router.
TEST(SynthModel, RouterSpreadsTokensOverExperts) {
  auto path = build(SynthArch::kQwen3Moe, SynthQuant::kF32, 0, "route.gguf");
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  const auto* embd = file.value()->find_tensor("token_embd.weight");
  const auto* router = file.value()->find_tensor("blk.0.ffn_gate_inp.weight");
  ASSERT_TRUE(embd && router);
  const int64_t n_embd = embd->dims[0], n_vocab = embd->dims[1], n_expert = router->dims[1];
  const float* e = reinterpret_cast<const float*>(file.value()->tensor_data(*embd));
  const float* r = reinterpret_cast<const float*>(file.value()->tensor_data(*router));
  std::vector<int> top2_counts(static_cast<size_t>(n_expert), 0);
  for (int64_t tok = 0; tok < n_vocab; ++tok) {
    std::vector<std::pair<float, int>> logits;
    for (int64_t x = 0; x < n_expert; ++x) {
      double dot = 0;
      for (int64_t i = 0; i < n_embd; ++i) dot += double(e[tok * n_embd + i]) * r[x * n_embd + i];
      ASSERT_TRUE(std::isfinite(dot));
      logits.emplace_back(static_cast<float>(dot), static_cast<int>(x));
    }
    std::partial_sort(logits.begin(), logits.begin() + 2, logits.end(), std::greater<>());
    top2_counts[logits[0].second]++;
    top2_counts[logits[1].second]++;
  }
  // Uniform routing would give each expert 2/8 = 25% of selections; demand every expert is used
  // and none takes more than twice its fair share.
  const double fair = 2.0 * n_vocab / n_expert;
  for (int64_t x = 0; x < n_expert; ++x) {
    EXPECT_GT(top2_counts[x], 0.25 * fair) << "expert " << x;
    EXPECT_LT(top2_counts[x], 2.0 * fair) << "expert " << x;
  }
}

}  // namespace
}  // namespace popper
