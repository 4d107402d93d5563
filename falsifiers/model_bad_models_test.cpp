// Falsifiers for model loading (contracts/qwen3-moe-forward-v1.yaml FALSIFY-QWEN3_MOE_FORWARD_V1_007): a GGUF
// missing a required tensor or key, or with a wrong shape or type, or an unknown arch, fails at
// load with a message naming the culprit — never later inside a matmul.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "engine/gguf/gguf_writer.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

using testing::test_temp_dir;
using testing::tiny_model_path;

struct Mutation {
  std::string skip_key;     // metadata key to drop
  std::string set_key;      // metadata key to overwrite with set_value
  GgufValue set_value;
  std::string skip_tensor;  // tensor to drop
  std::string retype_tensor;  // tensor to rewrite as F16 (same dims)
  std::string reshape_tensor;  // tensor whose dims[0] is halved
};

// Rewrites the tiny qwen3moe f32 model with one mutation and tries to load it.
Result<std::unique_ptr<Model>> load_mutated(const Mutation& m, const std::string& name) {
  auto src = GgufFile::open(tiny_model_path({SynthArch::kQwen3Moe, SynthQuant::kF32}));
  if (!src.ok()) return src.error();
  const GgufFile& f = *src.value();
  GgufWriter w;
  for (const auto& kv : f.metadata()) {
    if (kv.key == m.skip_key || kv.key == "general.alignment") continue;
    w.add_kv(kv.key, kv.key == m.set_key ? m.set_value : kv.value);
  }
  for (const auto& t : f.tensors()) {
    if (t.name == m.skip_tensor) continue;
    const uint8_t* data = f.tensor_data(t);
    if (t.name == m.retype_tensor) {
      w.add_tensor(t.name, GgmlType::F16, t.dims, nullptr);
    } else if (t.name == m.reshape_tensor) {
      auto dims = t.dims;
      dims[0] /= 2;
      w.add_tensor(t.name, t.type, dims, nullptr);
    } else {
      const uint64_t n = t.n_bytes;
      w.add_tensor(t.name, t.type, t.dims, [data, n](std::span<uint8_t> out) {
        std::memcpy(out.data(), data, n);
        return Status::success();
      });
    }
  }
  const std::string path = (test_temp_dir() / (name + ".gguf")).string();
  Status s = w.write(path);
  if (!s.ok()) return s.error();
  return Model::load(path);
}

void expect_load_error(const Mutation& m, const std::string& name, const std::vector<std::string>& needles) {
  auto r = load_mutated(m, name);
  ASSERT_FALSE(r.ok()) << name << " loaded";
  for (const auto& needle : needles) {
    EXPECT_NE(r.message().find(needle), std::string::npos) << "message lacks '" << needle << "': " << r.message();
  }
}

TEST(BadModels, TheUnmodifiedCopyLoads) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  auto r = load_mutated({}, "control");
  EXPECT_TRUE(r.ok()) << r.message();
}

TEST(BadModels, MissingTensorIsNamedAtLoad) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.skip_tensor = "blk.2.ffn_down_exps.weight";
  expect_load_error(m, "missing_tensor", {"blk.2.ffn_down_exps.weight", "missing"});
}

TEST(BadModels, MissingKeyIsNamedAtLoad) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.skip_key = "qwen3moe.expert_used_count";
  expect_load_error(m, "missing_key", {"qwen3moe.expert_used_count", "missing"});
}

TEST(BadModels, WrongShapeIsNamedWithBothShapes) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.reshape_tensor = "blk.1.attn_k.weight";
  expect_load_error(m, "wrong_shape", {"blk.1.attn_k.weight", "want [256, 128]", "got [128, 128]"});
}

TEST(BadModels, WrongTypeOfARouterOrNormIsNamed) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.retype_tensor = "blk.0.ffn_gate_inp.weight";
  expect_load_error(m, "wrong_type_router", {"blk.0.ffn_gate_inp.weight", "want f32", "got f16"});
  Mutation n;
  n.retype_tensor = "blk.3.attn_q_norm.weight";
  expect_load_error(n, "wrong_type_norm", {"blk.3.attn_q_norm.weight", "want f32"});
}

TEST(BadModels, UnknownArchIsAClearError) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.set_key = "general.architecture";
  m.set_value = GgufValue::string("llama");
  expect_load_error(m, "unknown_arch", {"general.architecture", "unknown arch 'llama'", "qwen3moe"});
}

TEST(BadModels, MetadataThatContradictsTheTensorsFailsAtLoad) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_007");
  Mutation m;
  m.set_key = "qwen3moe.expert_count";
  m.set_value = GgufValue::u32(16);
  expect_load_error(m, "expert_count", {"blk.0.ffn_gate_inp.weight", "want [256, 16]"});
  Mutation n;
  n.set_key = "qwen3moe.attention.head_count_kv";
  n.set_value = GgufValue::u32(3);
  expect_load_error(n, "head_count_kv", {"head_count_kv", "divisor"});
}

}  // namespace
}  // namespace popper
