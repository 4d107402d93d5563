// Falsifiers for the CUDA backend (contracts/cuda-backend-parity-v1.yaml): every op on the GPU
// against the CPU backend (the reference) with an NMSE bound per op, in the manner of llama.cpp's
// test-backend-ops, and end to end on the tiny models: 32 greedy tokens and the experts chosen
// at every layer identical to the CPU path.
//
// Without a GPU, or in a binary built without CUDA, every test skips with the reason, which the
// harness records as inconclusive (never survived).
#include <gtest/gtest.h>

#include "engine/core/rng.h"
#include "engine/model/backend_factory.h"
#include "engine/quant/traits.h"
#include "falsifiers/model_test_util.h"

namespace popper {
namespace {

using testing::test_prompt;
using testing::tiny_model;

// Float ops (norms, RoPE, attention, F32/F16 matmuls): only summation order differs from the CPU.
constexpr double kNmseDefault = 1e-7;
// Quantised matmuls: identical integers per block, float order differs; llama.cpp's bound.
constexpr double kNmseQuantMatmul = 5e-4;
constexpr int kGreedySteps = 32;

double nmse(const std::vector<float>& ref, const std::vector<float>& got) {
  EXPECT_EQ(ref.size(), got.size());
  double err = 0, norm = 0;
  for (size_t i = 0; i < std::min(ref.size(), got.size()); ++i) {
    const double d = double(ref[i]) - double(got[i]);
    err += d * d;
    norm += double(ref[i]) * double(ref[i]);
  }
  return norm > 0 ? err / norm : err;
}

// A fresh CUDA backend, or nullptr with the reason to skip. Fresh per test: the backend keeps
// weights on the device keyed by their host address (stable for a mapped GGUF file), and these
// tests free and reuse host memory for their ad-hoc matrices.
std::unique_ptr<Backend> cuda_backend(std::string* why) {
  if (!cuda_backend_compiled()) {
    *why = "this binary was built without the CUDA backend (POPPER_CUDA=OFF or no nvcc)";
    return nullptr;
  }
  auto b = make_backend(BackendKind::kCuda, 1, nullptr);
  if (!b.ok()) {
    *why = "no usable CUDA device: " + b.message();
    return nullptr;
  }
  return std::move(b.value());
}

#define REQUIRE_CUDA(var)                                     \
  std::string why_;                                           \
  const std::unique_ptr<Backend> var##_owner = cuda_backend(&why_); \
  Backend* var = var##_owner.get();                           \
  if (var == nullptr) GTEST_SKIP() << why_

std::vector<float> random_floats(int64_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = scale * (2.0f * float(rng.below(1u << 24)) / float(1u << 24) - 1.0f);
  return v;
}

// A [n_in, n_out] matrix of `type` quantised from random floats (owned bytes + view).
struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};
OwnedMatrix random_matrix(GgmlType type, int64_t n_in, int64_t n_out, uint64_t seed) {
  OwnedMatrix m;
  const int64_t row_bytes = ggml_row_size(type, n_in);
  m.bytes.resize(size_t(row_bytes * n_out));
  const auto f = random_floats(n_in * n_out, seed);
  for (int64_t r = 0; r < n_out; ++r) quant_traits(type)->quantize_row_ref(f.data() + r * n_in, m.bytes.data() + r * row_bytes, n_in);
  m.w = WeightMatrix::make(type, m.bytes.data(), n_in, n_out);
  return m;
}

// --- per-op parity -----------------------------------------------------------------------------

class QuantMatmulParity : public ::testing::TestWithParam<std::tuple<GgmlType, int64_t>> {};

TEST_P(QuantMatmulParity, MatmulMatchesCpuWithinNmseBound) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  const auto [type, n_tokens] = GetParam();
  const int64_t n_in = 512, n_out = 200;
  const OwnedMatrix m = random_matrix(type, n_in, n_out, 11 + uint64_t(type));
  const auto x = random_floats(n_tokens * n_in, 7, 3.0f);
  CpuBackend cpu(1);
  std::vector<float> ref(size_t(n_tokens * n_out)), got(ref.size());
  const Projection pr{&m.w, ref.data()}, pg{&m.w, got.data()};
  cpu.project({&pr, 1}, x.data(), n_tokens);
  gpu->project({&pg, 1}, x.data(), n_tokens);
  const double e = nmse(ref, got);
  RecordProperty("nmse", str_cat(std::scientific, e));  // to_string would print 0.000000
  const bool quantised = type != GgmlType::F32 && type != GgmlType::F16;
  EXPECT_LE(e, quantised ? kNmseQuantMatmul : kNmseDefault) << ggml_type_name(type) << " x " << n_tokens;
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmulParity,
                         ::testing::Combine(::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                                              GgmlType::Q8_0, GgmlType::F32, GgmlType::F16),
                                            ::testing::Values(int64_t(1), int64_t(5), int64_t(37))));

TEST(CudaOps, RmsnormRopeAddEmbedMatchCpu) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  CpuBackend cpu(1);
  const int64_t rows = 6, n = 128;
  const auto x = random_floats(rows * n, 3, 5.0f);
  const auto wv = random_floats(n, 4);
  const NormWeight w{wv.data(), n};
  std::vector<float> a(x.size()), b(x.size());
  cpu.rmsnorm(x.data(), w, rows, 1e-6f, a.data());
  gpu->rmsnorm(x.data(), w, rows, 1e-6f, b.data());
  EXPECT_LE(nmse(a, b), kNmseDefault) << "rmsnorm";
  a = x;
  b = x;
  cpu.rope(a.data(), 3, 2, 64, 4000, 1e6f);  // a deep position: theta accumulation matters
  gpu->rope(b.data(), 3, 2, 64, 4000, 1e6f);
  EXPECT_LE(nmse(a, b), kNmseDefault) << "rope";
  a = x;
  b = x;
  cpu.add(a.data(), wv.data(), n);
  gpu->add(b.data(), wv.data(), n);
  EXPECT_EQ(a, b) << "add";
  // Every table stays alive until the end: the backend caches uploads by host address
  // (cuda_backend.h), so a freed table's address reused by the next one would read the old upload.
  std::vector<OwnedMatrix> tables;
  tables.reserve(6);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    tables.push_back(random_matrix(t, 256, 10, 5));
    const OwnedMatrix& table = tables.back();
    const int32_t tokens[3] = {9, 0, 4};
    std::vector<float> ea(3 * 256), eb(3 * 256);
    cpu.embed(table.w, tokens, 3, ea.data());
    gpu->embed(table.w, tokens, 3, eb.data());
    EXPECT_LE(nmse(ea, eb), kNmseDefault) << "embed " << ggml_type_name(t);
  }
}

TEST(CudaOps, AttentionOverTheCacheMatchesCpuForF32AndF16) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  CpuBackend cpu(1);
  const AttentionShape s{8, 2, 64, 0.125f};
  for (KvType kt : {KvType::kF32, KvType::kF16}) {
    KvCache ca(1, s.n_head_kv, s.head_dim, 64, kt), cb(1, s.n_head_kv, s.head_dim, 64, kt);
    const int64_t n0 = 40, n1 = 7;  // a prefill, then a batch on top of it
    const auto k = random_floats((n0 + n1) * 128, 21), v = random_floats((n0 + n1) * 128, 22);
    ASSERT_TRUE(cpu.store_kv(ca, 0, 0, n0, k.data(), v.data()).ok());
    ASSERT_TRUE(gpu->store_kv(cb, 0, 0, n0, k.data(), v.data()).ok());
    ASSERT_TRUE(cpu.store_kv(ca, 0, n0, n1, k.data() + n0 * 128, v.data() + n0 * 128).ok());
    ASSERT_TRUE(gpu->store_kv(cb, 0, n0, n1, k.data() + n0 * 128, v.data() + n0 * 128).ok());
    const auto q = random_floats(n1 * 8 * 64, 23, 2.0f);
    std::vector<float> a(q.size()), b(q.size());
    cpu.attention(ca, 0, q.data(), n1, n0, s, a.data());
    gpu->attention(cb, 0, q.data(), n1, n0, s, b.data());
    EXPECT_LE(nmse(a, b), kNmseDefault) << kv_type_name(kt);
  }
}

TEST(CudaOps, MoeRoutingAndExpertFfnMatchCpuOnTinyQ4KM) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  const ModelConfig& c = model.config();
  const LayerWeights& L = model.weights().layers[0];
  CpuBackend cpu(1);
  for (int64_t n : {int64_t(1), int64_t(9)}) {
    const auto x = random_floats(n * c.n_embd, 31 + uint64_t(n), 2.0f);
    const int64_t k = c.n_expert_used;
    std::vector<int32_t> ia(size_t(n * k)), ib(ia.size());
    std::vector<float> wa(ia.size()), wb(ia.size());
    cpu.moe_route(L.ffn_gate_inp, x.data(), n, k, ia.data(), wa.data());
    gpu->moe_route(L.ffn_gate_inp, x.data(), n, k, ib.data(), wb.data());
    EXPECT_EQ(ia, ib) << "experts, " << n << " tokens";
    EXPECT_LE(nmse(wa, wb), kNmseDefault) << "router weights";
    std::vector<float> oa(size_t(n * c.n_embd)), ob(oa.size());
    cpu.moe_ffn(L, x.data(), n, ia.data(), wa.data(), k, oa.data());
    gpu->moe_ffn(L, x.data(), n, ia.data(), wa.data(), k, ob.data());
    EXPECT_LE(nmse(oa, ob), kNmseQuantMatmul) << "moe_ffn, " << n << " tokens";
  }
}

// --- end to end ---------------------------------------------------------------------------------

class CudaEndToEnd : public ::testing::TestWithParam<testing::TinyModelSpec> {};

TEST_P(CudaEndToEnd, GreedyTokensAndExpertsMatchCpuFor32Steps) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_002");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model(GetParam());
  const ModelConfig& c = model.config();
  CpuBackend cpu(1);
  // Greedy decode with routing recorded, one Session per backend.
  auto run = [&](Backend& b, std::vector<int32_t>* tokens, RoutingTrace* trace) {
    SessionOptions so;
    so.capacity = 64;
    so.record_routing = c.is_moe();
    Session s(model, b, so);
    std::vector<float> logits(size_t(c.n_vocab));
    const auto prompt = test_prompt(9, c.n_vocab, 5);
    ASSERT_TRUE(s.forward(prompt, logits.data()).ok());
    for (int i = 0; i < kGreedySteps; ++i) {
      const int32_t t = argmax_token(logits);
      tokens->push_back(t);
      ASSERT_TRUE(s.forward({&t, 1}, logits.data()).ok());
    }
    *trace = s.routing();
  };
  std::vector<int32_t> ta, tb;
  RoutingTrace ra, rb;
  run(cpu, &ta, &ra);
  run(*gpu, &tb, &rb);
  EXPECT_EQ(ta, tb) << "greedy tokens";
  ASSERT_EQ(ra.ids.size(), rb.ids.size());
  for (size_t il = 0; il < ra.ids.size(); ++il) EXPECT_EQ(ra.ids[il], rb.ids[il]) << "experts of layer " << il;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, CudaEndToEnd,
                         ::testing::Values(testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kF32},
                                           testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ8_0},
                                           testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M},
                                           testing::TinyModelSpec{SynthArch::kQwen3, SynthQuant::kQ4_K_M}),
                         [](const auto& info) { return info.param.name(); });

TEST(CudaBackendSelection, BadNamesAreRefusedAndAutoPicksTheGpu) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  auto bad = parse_backend_kind("gpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("cpu, cuda or auto"), std::string::npos);
  REQUIRE_CUDA(gpu);
  EXPECT_STREQ(gpu->name(), "cuda");
  auto autob = make_backend(BackendKind::kAuto, 1, nullptr);
  ASSERT_TRUE(autob.ok());
  EXPECT_STREQ(autob.value()->name(), "cuda") << "auto picks the GPU when one answers";
}

}  // namespace
}  // namespace popper
