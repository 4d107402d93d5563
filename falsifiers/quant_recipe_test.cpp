// Falsifiers for engine/quant/recipe: the per-tensor types of llama.cpp's file types, checked
// against llama.cpp's own expectations and against what llama-quantize itself chose:
//  - the layer sets llama.cpp's snapshot tests pin for Qwen3-0.6B and Qwen3-14B
//    (tests/snapshots/qwen3-*.schema in the vendored llama.cpp), written out here as facts;
//  - falsifiers/fixtures/quant/recipes.json: llama-quantize --dry-run's choice for every tensor of
//    the synthetic 30b-a3b, tiny qwen3moe (8 experts) and tiny qwen3 layouts under each file
//    type (scripts/make_quant_fixtures.py);
//  - the errors: already-quantised input, a row length no block fits, non-F32 norms, other archs.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/quant/recipe.h"
#include "engine/synth/tensor_plan.h"

namespace popper {
namespace {

struct Layout {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> dims;
  std::vector<GgmlType> types;
  void add(std::string name, std::vector<int64_t> d, GgmlType t = GgmlType::F32) {
    names.push_back(std::move(name));
    dims.push_back(std::move(d));
    types.push_back(t);
  }
  std::vector<RecipeTensor> view() const {
    std::vector<RecipeTensor> v;
    for (size_t i = 0; i < names.size(); ++i) v.push_back({names[i], dims[i], types[i]});
    return v;
  }
};

// A dense qwen3 model's tensors as llama.cpp's converter writes them.
Layout dense_layout(int64_t n_layer, int64_t n_embd, int64_t n_ff, int64_t q_dim, int64_t kv_dim,
                    int64_t n_vocab, bool with_output, GgmlType weights = GgmlType::F32) {
  Layout l;
  l.add("token_embd.weight", {n_embd, n_vocab}, weights);
  for (int64_t il = 0; il < n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    l.add(p + "attn_norm.weight", {n_embd});
    l.add(p + "attn_q.weight", {n_embd, q_dim}, weights);
    l.add(p + "attn_k.weight", {n_embd, kv_dim}, weights);
    l.add(p + "attn_v.weight", {n_embd, kv_dim}, weights);
    l.add(p + "attn_output.weight", {q_dim, n_embd}, weights);
    l.add(p + "attn_k_norm.weight", {128});
    l.add(p + "attn_q_norm.weight", {128});
    l.add(p + "ffn_norm.weight", {n_embd});
    l.add(p + "ffn_gate.weight", {n_embd, n_ff}, weights);
    l.add(p + "ffn_down.weight", {n_ff, n_embd}, weights);
    l.add(p + "ffn_up.weight", {n_embd, n_ff}, weights);
  }
  l.add("output_norm.weight", {n_embd});
  if (with_output) l.add("output.weight", {n_embd, n_vocab}, weights);
  return l;
}

std::map<std::string, GgmlType> plan(QuantFtype f, const RecipeModel& m, const Layout& l) {
  auto choices = plan_quant_types(f, m, l.view());
  EXPECT_TRUE(choices.ok()) << choices.message();
  std::map<std::string, GgmlType> out;
  if (!choices.ok()) return out;
  for (size_t i = 0; i < l.names.size(); ++i) out[l.names[i]] = (*choices)[i].type;
  return out;
}

// Checks a dense layout against a schema: `base` everywhere quantisable, Q6_K for output and for
// attn_v / ffn_down on `q6k_layers`, F32 for the norms.
void expect_schema(const std::map<std::string, GgmlType>& got, GgmlType base, const std::set<int>& q6k_layers,
                   int n_layer) {
  EXPECT_EQ(got.at("output.weight"), GgmlType::Q6_K);
  EXPECT_EQ(got.at("token_embd.weight"), base);
  EXPECT_EQ(got.at("output_norm.weight"), GgmlType::F32);
  for (int il = 0; il < n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const GgmlType more = q6k_layers.count(il) ? GgmlType::Q6_K : base;
    EXPECT_EQ(got.at(p + "attn_v.weight"), more) << p;
    EXPECT_EQ(got.at(p + "ffn_down.weight"), more) << p;
    for (const char* t :
         {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
      EXPECT_EQ(got.at(p + t), base) << p << t;
    for (const char* t : {"attn_norm.weight", "attn_q_norm.weight", "attn_k_norm.weight", "ffn_norm.weight"})
      EXPECT_EQ(got.at(p + t), GgmlType::F32) << p << t;
  }
}

TEST(QuantRecipe, Qwen3DenseLayersMatchLlamaCppSnapshots) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-RECIPE");
  // tests/snapshots/qwen3-0.6b.schema ([Q4_K_M] and [Q5_K_M]): 28 layers.
  const std::set<int> qwen3_06b = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  const Layout small = dense_layout(28, 1024, 3072, 2048, 1024, 151936, true);
  expect_schema(plan(QuantFtype::kQ4_K_M, {"qwen3", 28, 0}, small), GgmlType::Q4_K, qwen3_06b, 28);
  expect_schema(plan(QuantFtype::kQ5_K_M, {"qwen3", 28, 0}, small), GgmlType::Q5_K, qwen3_06b, 28);
  // tests/snapshots/qwen3-14b.schema ([Q4_K_M]): 40 layers.
  const std::set<int> qwen3_14b = {0, 1, 2, 3, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 35, 36, 37, 38, 39};
  const Layout big = dense_layout(40, 5120, 17408, 5120, 1024, 151936, true);
  expect_schema(plan(QuantFtype::kQ4_K_M, {"qwen3", 40, 0}, big), GgmlType::Q4_K, qwen3_14b, 40);
  // [Q8_0] and [Q6_K] list no overrides: every quantised tensor takes the base type, output too.
  for (QuantFtype f : {QuantFtype::kQ8_0, QuantFtype::kQ6_K}) {
    const GgmlType base = quant_ftype_base_type(f);
    for (const auto& [name, type] : plan(f, {"qwen3", 40, 0}, big))
      EXPECT_EQ(type, name.find("norm") != std::string::npos ? GgmlType::F32 : base) << name;
  }
}

TEST(QuantRecipe, TiedEmbeddingsGiveTokenEmbdTheOutputType) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-RECIPE");
  const Layout tied = dense_layout(4, 256, 512, 256, 128, 2048, /*with_output=*/false);
  EXPECT_EQ(plan(QuantFtype::kQ4_K_M, {"qwen3", 4, 0}, tied).at("token_embd.weight"), GgmlType::Q6_K);
  EXPECT_EQ(plan(QuantFtype::kQ8_0, {"qwen3", 4, 0}, tied).at("token_embd.weight"), GgmlType::Q8_0);
  // Untied, token_embd keeps the base type.
  const Layout untied = dense_layout(4, 256, 512, 256, 128, 2048, true);
  EXPECT_EQ(plan(QuantFtype::kQ4_K_M, {"qwen3", 4, 0}, untied).at("token_embd.weight"), GgmlType::Q4_K);
}

TEST(QuantRecipe, EightExpertModelsGetQ8AttentionKVAndQ5KOutputProjection) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-RECIPE");
  SynthShape s = synth_shape(SynthOptions{}).value();  // tiny qwen3moe: 8 experts
  ASSERT_EQ(s.n_expert, 8);
  const auto tensors = plan_tensors(SynthArch::kQwen3Moe, s, SynthQuant::kQ4_K_M);
  std::map<std::string, GgmlType> t;
  for (const auto& p : tensors) t[p.name] = p.type;
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    EXPECT_EQ(t.at(p + "attn_v.weight"), GgmlType::Q8_0) << p;
    EXPECT_EQ(t.at(p + "attn_k.weight"), GgmlType::Q8_0) << p;
    EXPECT_EQ(t.at(p + "attn_output.weight"), GgmlType::Q5_K) << p;
    EXPECT_EQ(t.at(p + "attn_q.weight"), GgmlType::Q4_K) << p;
    EXPECT_EQ(t.at(p + "ffn_down_exps.weight"),
              use_more_bits(il, s.n_layer) ? GgmlType::Q6_K : GgmlType::Q4_K)
        << p;
    EXPECT_EQ(t.at(p + "ffn_gate_inp.weight"), GgmlType::F32) << p;
  }
  // The same model with 16 experts follows the general rule.
  s.n_expert = 16;
  std::map<std::string, GgmlType> t16;
  for (const auto& p : plan_tensors(SynthArch::kQwen3Moe, s, SynthQuant::kQ4_K_M)) t16[p.name] = p.type;
  EXPECT_EQ(t16.at("blk.0.attn_k.weight"), GgmlType::Q4_K);
  EXPECT_EQ(t16.at("blk.0.attn_v.weight"), GgmlType::Q4_K);  // use_more_bits(0, 4) is false
  EXPECT_EQ(t16.at("blk.3.attn_v.weight"), GgmlType::Q6_K);
  EXPECT_EQ(t16.at("blk.0.attn_output.weight"), GgmlType::Q4_K);
}

TEST(QuantRecipe, ResultDoesNotDependOnTheInputOrder) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-RECIPE");
  const Layout l = dense_layout(12, 256, 512, 256, 128, 2048, true);
  Layout reversed;
  for (size_t i = l.names.size(); i-- > 0;) reversed.add(l.names[i], l.dims[i], l.types[i]);
  EXPECT_EQ(plan(QuantFtype::kQ4_K_M, {"qwen3", 12, 0}, l),
            plan(QuantFtype::kQ4_K_M, {"qwen3", 12, 0}, reversed));
}

TEST(QuantRecipe, OrderIsLlamaCppsNonLayerFirstThenByLayerNumber) {
  EXPECT_TRUE(llama_tensor_order_less("output.weight", "blk.0.attn_q.weight"));
  EXPECT_TRUE(llama_tensor_order_less("output.weight", "token_embd.weight"));
  EXPECT_TRUE(llama_tensor_order_less("blk.2.ffn_up.weight", "blk.10.attn_k.weight"));
  EXPECT_TRUE(llama_tensor_order_less("blk.3.attn_k.weight", "blk.3.attn_q.weight"));
  EXPECT_FALSE(llama_tensor_order_less("blk.10.attn_k.weight", "blk.9.ffn_up.weight"));
}

// ---- Bad input: clear errors naming the tensor --------------------------------------------------

std::string plan_error(QuantFtype f, const RecipeModel& m, const Layout& l) {
  auto r = plan_quant_types(f, m, l.view());
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.message();
}

TEST(QuantRecipe, AlreadyQuantisedInputIsAnErrorNamingTheTensor) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  Layout l = dense_layout(2, 256, 512, 256, 128, 2048, true);
  l.types[2] = GgmlType::Q4_K;  // blk.0.attn_q.weight
  const std::string e = plan_error(QuantFtype::kQ8_0, {"qwen3", 2, 0}, l);
  EXPECT_NE(e.find("blk.0.attn_q.weight (q4_K [256, 256]): already quantised"), std::string::npos) << e;
}

TEST(QuantRecipe, RowLengthNoBlockFitsIsAnErrorNamingTensorAndLlamaCppsFallback) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  // n_ff 320: ffn_down's rows are 320 long, not a multiple of 256.
  const Layout l = dense_layout(2, 256, 320, 256, 128, 2048, true);
  const std::string e = plan_error(QuantFtype::kQ4_K_M, {"qwen3", 2, 0}, l);
  EXPECT_NE(e.find("blk.0.ffn_down.weight (f32 [320, 256]): row length 320 is not a multiple of q4_K's block "
                   "size 256"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("would fall back to q5_0"), std::string::npos) << e;
  // Q8_0's 32-blocks fit it.
  EXPECT_TRUE(plan_quant_types(QuantFtype::kQ8_0, {"qwen3", 2, 0}, l.view()).ok());
}

TEST(QuantRecipe, NormsPopperCannotRunAreAnError) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  Layout l = dense_layout(2, 256, 512, 256, 128, 2048, true, GgmlType::BF16);
  EXPECT_TRUE(plan_quant_types(QuantFtype::kQ4_K_M, {"qwen3", 2, 0}, l.view()).ok())
      << "BF16 weights quantise";
  l.types[1] = GgmlType::BF16;  // blk.0.attn_norm.weight
  const std::string e = plan_error(QuantFtype::kQ4_K_M, {"qwen3", 2, 0}, l);
  EXPECT_NE(e.find("blk.0.attn_norm.weight (bf16 [256]): kept unquantised"), std::string::npos) << e;
}

TEST(QuantRecipe, OtherArchsAndBadLayersAreErrors) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  const Layout l = dense_layout(2, 256, 512, 256, 128, 2048, true);
  EXPECT_NE(plan_error(QuantFtype::kQ4_K_M, {"llama", 2, 0}, l).find("'llama'"), std::string::npos);
  Layout moe;
  moe.add("blk.7.ffn_down_exps.weight", {256, 256, 16});
  EXPECT_NE(plan_error(QuantFtype::kQ4_K_M, {"qwen3moe", 2, 16}, moe).find("layer 7 outside [0, 2)"),
            std::string::npos);
}

TEST(QuantRecipe, FtypeNamesRoundTrip) {
  for (QuantFtype f : {QuantFtype::kAllF32, QuantFtype::kQ8_0, QuantFtype::kQ4_K_M, QuantFtype::kQ5_K_M,
                       QuantFtype::kQ6_K}) {
    EXPECT_EQ(parse_quant_ftype(quant_ftype_name(f)).value(), f);
  }
  EXPECT_EQ(parse_quant_ftype("Q4_K_M").value(), QuantFtype::kQ4_K_M);
  EXPECT_FALSE(parse_quant_ftype("q4_k_s").ok());
  EXPECT_EQ(static_cast<uint32_t>(QuantFtype::kQ4_K_M), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

// ---- llama-quantize's own choices (fixture) -------------------------------------------------------

nlohmann::json load_recipe_fixture() {
  std::ifstream in(std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/quant/recipes.json");
  if (!in) return nullptr;
  return nlohmann::json::parse(in);
}

TEST(QuantRecipe, EveryTensorTypeMatchesLlamaQuantizeDryRuns) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-RECIPE");
  const nlohmann::json fixture = load_recipe_fixture();
  ASSERT_FALSE(fixture.is_null())
      << "falsifiers/fixtures/quant/recipes.json missing (scripts/make_quant_fixtures.py)";
  int checked = 0;
  for (const auto& layout : fixture["layouts"]) {
    Layout l;
    for (const auto& t : layout["tensors"])
      l.add(t["name"].get<std::string>(), t["dims"].get<std::vector<int64_t>>(),
            ggml_type_from_name(t["type"].get<std::string>()).value());
    const RecipeModel m{layout["arch"], layout["n_layer"], layout["n_expert"]};
    for (const auto& [ftype_name, types] : layout["llama_quantize"].items()) {
      const QuantFtype f = parse_quant_ftype(ftype_name).value();
      const auto got = plan(f, m, l);
      for (const auto& [name, type] : types.items()) {
        ASSERT_TRUE(got.count(name)) << name;
        EXPECT_EQ(std::string(ggml_type_name(got.at(name))), type.get<std::string>())
            << layout["name"] << " " << ftype_name << " " << name;
        ++checked;
      }
    }
  }
  RecordProperty("tensors_checked", checked);
  EXPECT_GT(checked, 2000);
}

TEST(QuantRecipe, SynthLayoutsAreTheOnesLlamaQuantizeWasAskedAbout) {
  // The fixture's tensor lists are the synth presets' own (names and shapes), so the synth
  // recipe and `popper quantize` are judged on the same layouts.
  const nlohmann::json fixture = load_recipe_fixture();
  ASSERT_FALSE(fixture.is_null());
  for (const auto& layout : fixture["layouts"]) {
    if (!layout.contains("synth")) continue;
    SynthOptions o;
    o.arch = parse_synth_arch(layout["synth"]["arch"]).value();
    o.preset = layout["synth"]["preset"];
    const auto planned = plan_tensors(o.arch, synth_shape(o).value(), SynthQuant::kF32);
    ASSERT_EQ(planned.size(), layout["tensors"].size()) << layout["name"];
    std::map<std::string, std::vector<int64_t>> dims;
    for (const auto& t : planned) dims[t.name] = t.dims;
    for (const auto& t : layout["tensors"])
      EXPECT_EQ(dims.at(t["name"].get<std::string>()), t["dims"].get<std::vector<int64_t>>()) << t["name"];
  }
}

}  // namespace
}  // namespace popper
