// Falsifiers for engine/convert/quantize (`popper quantize`): the output follows the recipe,
// carries the metadata the way llama-quantize does, equals llama-quantize's bytes on the same
// input (committed digests), dequantises close to its input (per-type bounds), agrees tensor by
// tensor with `popper synth`'s own quantisation, rejects bad input naming the tensor, and never
// leaves a partial file under the output name (errors, cancellation, kill -9).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/convert/quantize.h"
#include "engine/core/atomic_file.h"
#include "engine/core/rng.h"
#include "engine/core/sha256.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/quant/traits.h"
#include "engine/synth/tensor_plan.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

namespace fs = std::filesystem;
using testing::test_temp_dir;
using testing::tiny_model_path;

const testing::TinyModelSpec kMoeF32{SynthArch::kQwen3Moe, SynthQuant::kF32};
const testing::TinyModelSpec kDenseF32{SynthArch::kQwen3, SynthQuant::kF32};

// A directory of its own under the test temp dir.
fs::path fresh_dir(const std::string& name) {
  fs::path d = test_temp_dir() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

size_t n_entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

std::string quantize_to(const testing::TinyModelSpec& in, QuantFtype f, const fs::path& dir, int threads) {
  const std::string out = (dir / (in.name() + "." + quant_ftype_name(f) + ".gguf")).string();
  QuantizeOptions o;
  o.ftype = f;
  o.n_threads = threads;
  auto r = quantize_model(tiny_model_path(in), out, o);
  EXPECT_TRUE(r.ok()) << r.message();
  return out;
}

// Quantised once per process and shared by the tests that only read the output.
std::string quantized(const testing::TinyModelSpec& in, QuantFtype f) {
  return testing::quantized_model_path(in, f);
}

TEST(Quantize, TensorTypesFollowTheRecipeAndTheModelLoads) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-QUANTIZE");
  for (const auto& spec : {kMoeF32, kDenseF32}) {
    const std::string out = quantized(spec, QuantFtype::kQ4_K_M);
    auto file = GgufFile::open(out);
    ASSERT_TRUE(file.ok()) << file.message();
    SynthShape shape = synth_shape(SynthOptions{spec.arch}).value();
    for (const auto& t : plan_tensors(spec.arch, shape, SynthQuant::kQ4_K_M)) {
      const GgufTensorInfo* got = (*file)->find_tensor(t.name);
      ASSERT_NE(got, nullptr) << t.name;
      EXPECT_EQ(got->type, t.type) << t.name;
      EXPECT_EQ(got->dims, t.dims) << t.name;
    }
    auto model = Model::load(out);
    EXPECT_TRUE(model.ok()) << model.message();
  }
}

TEST(Quantize, MetadataIsCarriedOverInOrderWithFileTypeAndVersionLast) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-QUANTIZE");
  const std::string out = quantized(kMoeF32, QuantFtype::kQ6_K);
  auto in = GgufFile::open(tiny_model_path(kMoeF32));
  auto q = GgufFile::open(out);
  ASSERT_TRUE(in.ok() && q.ok());
  std::vector<const GgufKeyValue*> kept;
  for (const auto& kv : (*in)->metadata())
    if (kv.key != "general.file_type" && kv.key != "general.quantization_version") kept.push_back(&kv);
  const auto& got = (*q)->metadata();
  ASSERT_EQ(got.size(), kept.size() + 2);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(got[i].key, kept[i]->key);
    EXPECT_TRUE(got[i].value == kept[i]->value) << got[i].key;
  }
  EXPECT_EQ(got[kept.size()].key, "general.quantization_version");
  EXPECT_EQ(got[kept.size()].value.as_u64(), 2u);
  EXPECT_EQ(got.back().key, "general.file_type");
  EXPECT_EQ(got.back().value.as_u64(), 18u);  // LLAMA_FTYPE_MOSTLY_Q6_K
  // llama-quantize's tensor order: output* and token_embd first, then blk.0, blk.1, ...
  const auto& tensors = (*q)->tensors();
  EXPECT_EQ(tensors[0].name, "output.weight");
  EXPECT_EQ(tensors[1].name, "output_norm.weight");
  EXPECT_EQ(tensors[2].name, "token_embd.weight");
  EXPECT_EQ(tensors[3].name, "blk.0.attn_k.weight");
}

// Each type's reference quantiser on the synthetic weights (roughly Gaussian rows): the RMS of the
// error relative to the RMS of the weights. The bounds are the quantisers' known accuracy with
// headroom, so a wrong scale, a swapped nibble or a dropped high bit fails them by far:
//   Q8_0 ~0.5% (127 levels per block), Q6_K ~2% (63 levels, 16-value sub-blocks),
//   Q5_K ~4% (31 levels), Q4_K ~8% (15 levels, with a fitted min).
constexpr double kMaxRelRmsQ8_0 = 0.01;
constexpr double kMaxRelRmsQ6K = 0.04;
constexpr double kMaxRelRmsQ5K = 0.07;
constexpr double kMaxRelRmsQ4K = 0.13;

double max_rel_rms(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
      return kMaxRelRmsQ8_0;
    case GgmlType::Q6_K:
      return kMaxRelRmsQ6K;
    case GgmlType::Q5_K:
      return kMaxRelRmsQ5K;
    case GgmlType::Q4_K:
      return kMaxRelRmsQ4K;
    default:
      return 0;  // copied tensors must be exact
  }
}

TEST(Quantize, DequantisedWeightsStayWithinEachTypesErrorBound) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-QUANTIZE");
  auto in = GgufFile::open(tiny_model_path(kMoeF32));
  ASSERT_TRUE(in.ok());
  for (QuantFtype f : {QuantFtype::kQ8_0, QuantFtype::kQ4_K_M, QuantFtype::kQ5_K_M, QuantFtype::kQ6_K}) {
    auto q = GgufFile::open(quantized(kMoeF32, f));
    ASSERT_TRUE(q.ok());
    for (const auto& t : (*q)->tensors()) {
      const GgufTensorInfo* src = (*in)->find_tensor(t.name);
      ASSERT_NE(src, nullptr);
      const int64_t n = t.n_elements();
      std::vector<float> got(static_cast<size_t>(n));
      quant_traits(t.type)->dequantize_row((*q)->tensor_data(t), got.data(), n);
      const auto* want = reinterpret_cast<const float*>((*in)->tensor_data(*src));
      double err2 = 0, ref2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        err2 += (got[i] - want[i]) * double(got[i] - want[i]);
        ref2 += want[i] * double(want[i]);
      }
      const double rel = std::sqrt(err2 / ref2);
      EXPECT_LE(rel, max_rel_rms(t.type))
          << quant_ftype_name(f) << " " << t.name << " " << ggml_type_name(t.type);
      if (t.type == GgmlType::F32) {
        EXPECT_EQ(rel, 0.0) << t.name;
      }
    }
  }
}

TEST(Quantize, TensorBytesEqualPopperSynthsOwnQuantisation) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-QUANTIZE");
  // `popper synth --quant q4_k_m` quantises the same floats its F32 file holds: two independent
  // paths (synth's filler and quantize's row loop) through the same reference quantisers.
  for (SynthQuant sq : {SynthQuant::kQ8_0, SynthQuant::kQ4_K_M}) {
    auto q = GgufFile::open(quantized(kMoeF32, synth_ftype(sq)));
    auto s = GgufFile::open(tiny_model_path({SynthArch::kQwen3Moe, sq}));
    ASSERT_TRUE(q.ok() && s.ok());
    ASSERT_EQ((*q)->tensors().size(), (*s)->tensors().size());
    for (const auto& t : (*s)->tensors()) {
      const GgufTensorInfo* mine = (*q)->find_tensor(t.name);
      ASSERT_NE(mine, nullptr) << t.name;
      ASSERT_EQ(mine->type, t.type) << t.name;
      EXPECT_EQ(std::memcmp((*q)->tensor_data(*mine), (*s)->tensor_data(t), t.n_bytes), 0) << t.name;
    }
  }
}

TEST(Quantize, ThreadCountDoesNotChangeTheBytes) {
  EXPECT_EQ(sha256_file(quantized(kMoeF32, QuantFtype::kQ4_K_M)).value(),  // one thread
            sha256_file(quantize_to(kMoeF32, QuantFtype::kQ4_K_M, fresh_dir("threads-3"), 3)).value());
}

// falsifiers/fixtures/quant/llama_quantize.json: llama-quantize's output digests on the tiny
// synthetic F32 files (scripts/make_quant_fixtures.py).
TEST(Quantize, OutputBytesEqualLlamaQuantizes) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-QUANTIZE");
  std::ifstream in(std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/quant/llama_quantize.json");
  ASSERT_TRUE(in) << "falsifiers/fixtures/quant/llama_quantize.json missing (scripts/make_quant_fixtures.py)";
  const auto fixture = nlohmann::json::parse(in);
  int compared = 0;
  for (const auto& model : fixture["models"]) {
    const testing::TinyModelSpec spec{parse_synth_arch(model["arch"]).value(), SynthQuant::kF32};
    ASSERT_EQ(sha256_file(tiny_model_path(spec)).value(), model["input_sha256"])
        << "the fixture's input changed";
    for (const auto& [type, want] : model["outputs"].items()) {
      const std::string out = quantized(spec, parse_quant_ftype(type).value());
      auto file = GgufFile::open(out);
      ASSERT_TRUE(file.ok());
      for (const auto& [name, digest] : want["tensors"].items()) {
        const GgufTensorInfo* t = (*file)->find_tensor(name);
        ASSERT_NE(t, nullptr) << name;
        EXPECT_EQ(
            sha256_hex(std::string_view(reinterpret_cast<const char*>((*file)->tensor_data(*t)), t->n_bytes)),
            digest["sha256"])
            << model["arch"] << " " << type << " " << name << " (" << ggml_type_name(t->type) << ")";
      }
      EXPECT_EQ(sha256_file(out).value(), want["sha256"]) << model["arch"] << " " << type << ": whole file";
      ++compared;
    }
  }
  EXPECT_GE(compared, 8);
}

// ---- Bad input ------------------------------------------------------------------------------

// Rewrites `src` through GgufWriter with `edit` applied to each tensor's bytes (f32 only) and
// `arch` as general.architecture.
std::string rewrite(const std::string& src, const std::string& out, const std::string& arch,
                    const std::function<void(const std::string&, std::span<float>)>& edit) {
  auto f = GgufFile::open(src);
  EXPECT_TRUE(f.ok());
  GgufWriter w;
  for (const auto& kv : (*f)->metadata())
    w.add_kv(kv.key, kv.key == "general.architecture" ? GgufValue::string(arch) : kv.value);
  for (const auto& t : (*f)->tensors()) {
    const uint8_t* data = (*f)->tensor_data(t);
    const std::string name = t.name;
    const bool is_f32 = t.type == GgmlType::F32;
    w.add_tensor(t.name, t.type, t.dims, [data, name, is_f32, &edit](std::span<uint8_t> o) {
      std::memcpy(o.data(), data, o.size());
      if (is_f32) edit(name, {reinterpret_cast<float*>(o.data()), o.size() / 4});
      return Status::success();
    });
  }
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

std::string quantize_error(const std::string& in, const fs::path& dir) {
  const std::string out = (dir / "out.gguf").string();
  auto r = quantize_model(in, out, QuantizeOptions{QuantFtype::kQ4_K_M, 1});
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(out)) << "a failed quantize left " << out;
  return r.ok() ? "" : r.message();
}

TEST(Quantize, AlreadyQuantisedInputIsRefusedNamingTheTensor) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  const fs::path dir = fresh_dir("bad-quantised");
  const std::string e = quantize_error(tiny_model_path({SynthArch::kQwen3Moe, SynthQuant::kQ8_0}), dir);
  EXPECT_NE(e.find("output.weight (q8_0 [256, 2048]): already quantised"), std::string::npos) << e;
  EXPECT_EQ(n_entries(dir), 0u) << "no temp file may be left behind";
}

TEST(Quantize, UnknownArchIsRefused) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  const fs::path dir = fresh_dir("bad-arch");
  const std::string in = rewrite(tiny_model_path(kMoeF32), (dir / "llama.gguf").string(), "llama",
                                 [](const std::string&, std::span<float>) {});
  const std::string e = quantize_error(in, dir);
  EXPECT_NE(e.find("general.architecture 'llama'"), std::string::npos) << e;
}

TEST(Quantize, NonFiniteWeightIsRefusedNamingTensorAndElement) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-BAD-INPUT");
  const fs::path dir = fresh_dir("bad-nan");
  const std::string in = rewrite(tiny_model_path(kMoeF32), (dir / "nan.gguf").string(), "qwen3moe",
                                 [](const std::string& name, std::span<float> v) {
                                   if (name == "blk.1.ffn_up_exps.weight") v[3 * 256 + 17] = NAN;
                                 });
  const std::string e = quantize_error(in, dir);
  EXPECT_NE(e.find("blk.1.ffn_up_exps.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("element [17, 3, 0] is nan"), std::string::npos) << e;
  EXPECT_EQ(n_entries(dir), 1u) << "only the input may remain";
}

TEST(Quantize, WritingOverTheInputIsRefused) {
  const fs::path dir = fresh_dir("bad-same");
  const std::string in = (dir / "m.gguf").string();
  fs::copy_file(tiny_model_path(kMoeF32), in);
  auto r = quantize_model(in, in, QuantizeOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("is the input file"), std::string::npos) << r.message();
}

// ---- Atomic output --------------------------------------------------------------------------

TEST(Quantize, CancelledRunLeavesNoFileAndKeepsAnOldOne) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ATOMIC");
  const fs::path dir = fresh_dir("cancel");
  const std::string out = (dir / "out.gguf").string();
  ASSERT_TRUE(write_file_atomic(out, "old contents").ok());
  std::atomic<bool> cancel{false};
  QuantizeOptions o{QuantFtype::kQ4_K_M, 1, &cancel};
  auto r = quantize_model(tiny_model_path(kMoeF32), out, o, [&](const QuantizeProgress& p) {
    if (p.tensors_done == 5) cancel = true;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("interrupted"), std::string::npos) << r.message();
  EXPECT_EQ(read_file(out).value(), "old contents");
  EXPECT_EQ(n_entries(dir), 1u) << "the temp file must be removed";
}

TEST(Quantize, KillNineMidWriteNeverLeavesATornOutput) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ATOMIC");
  const fs::path dir = fresh_dir("kill");
  const std::string in = tiny_model_path(kMoeF32);
  const std::string want = sha256_file(quantized(kMoeF32, QuantFtype::kQ4_K_M)).value();
  const std::string out = (dir / "out.gguf").string();
  Rng rng(7);
  int mid_write_kills = 0;
  for (int round = 0; round < 8; ++round) {
    fs::remove(out);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (;;) (void)quantize_model(in, out, QuantizeOptions{QuantFtype::kQ4_K_M, 1});
    }
    ::usleep(30000 + static_cast<useconds_t>(rng.next() % 300000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) {
        ++mid_write_kills;
        fs::remove(e.path());
      }
    if (fs::exists(out)) {
      EXPECT_EQ(sha256_file(out).value(), want) << "round " << round << ": torn output";
    }
  }
  EXPECT_GT(mid_write_kills, 0) << "no kill landed inside a write; the test did not test anything";
}

}  // namespace
}  // namespace popper
