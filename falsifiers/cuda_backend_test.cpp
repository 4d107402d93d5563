// Falsifiers for the CUDA backend (contracts/cuda-backend-parity-v1.yaml): every op on the GPU
// against the CPU backend (the reference) with an NMSE bound per op, in the manner of llama.cpp's
// test-backend-ops, and end to end on the tiny models: 32 greedy tokens and the experts chosen
// at every layer identical to the CPU path.
//
// Without a GPU, or in a binary built without CUDA, every test skips with the reason, which the
// harness records as inconclusive (never survived).
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/core/rng.h"
#include "engine/model/backend_factory.h"
#include "engine/quant/traits.h"
#include "falsifiers/model_test_util.h"
#ifdef POPPER_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"  // the graph falsifier reads its replay count
#endif

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

// A CUDA backend, or nullptr with the reason to skip.
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

// A [n_in, n_out] matrix of `type` quantised from random floats (owned bytes + view). A backend
// reads it through the handle prepared_on() gives.
struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

// `w` taken by backend b (its layout, its memory); aborts when b cannot hold it.
std::unique_ptr<BackendWeight> prepared_on(Backend& b, const WeightMatrix& w,
                                           WeightUse use = WeightUse::kMatmul) {
  auto h = b.prepare_weight(w, 1, use);
  POPPER_CHECK(h.ok(), "prepare_weight: ", h.ok() ? "" : h.message());
  return std::move(h.value());
}
std::unique_ptr<BackendWeight> prepared_on(Backend& b, const NormWeight& w) {
  auto h = b.prepare_norm(w);
  POPPER_CHECK(h.ok(), "prepare_norm: ", h.ok() ? "" : h.message());
  return std::move(h.value());
}
// The model's weights on backend b (Model::weights_on); aborts when b cannot hold them.
const PreparedWeights& model_on(const Model& model, Backend& b) {
  auto w = model.weights_on(b);
  POPPER_CHECK(w.ok(), "weights_on: ", w.ok() ? "" : w.message());
  return *w.value();
}
OwnedMatrix random_matrix(GgmlType type, int64_t n_in, int64_t n_out, uint64_t seed) {
  OwnedMatrix m;
  const int64_t row_bytes = ggml_row_size(type, n_in);
  m.bytes.resize(size_t(row_bytes * n_out));
  const auto f = random_floats(n_in * n_out, seed);
  for (int64_t r = 0; r < n_out; ++r) quant_traits(type)->quantize_row_ref(f.data() + r * n_in, m.bytes.data() + r * row_bytes, n_in);
  m.w = WeightMatrix::make(type, m.bytes.data(), n_in, n_out);
  return m;
}

// Host arrays in and out of a backend's memory: every op below runs the same code on the CPU
// and on the GPU, only the Backend differs.
template <class T>
BackendArray<T> in_backend(Backend& b, const std::vector<T>& host) {
  BackendArray<T> a(b, int64_t(host.size()));
  a.upload(host.data(), int64_t(host.size()));
  return a;
}
template <class T>
std::vector<T> on_host(const BackendArray<T>& a) {
  std::vector<T> v(static_cast<size_t>(a.size()));
  a.download(v.data(), a.size());
  return v;
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
  auto run = [&](Backend& b) {
    const BackendArray<float> bx = in_backend(b, x);
    BackendArray<float> by(b, n_tokens * n_out);
    const auto w = prepared_on(b, m.w);
    const Projection p{w.get(), by.data()};
    b.project({&p, 1}, bx.data(), n_tokens);
    return on_host(by);
  };
  const double e = nmse(run(cpu), run(*gpu));
  RecordProperty("nmse", str_cat(std::scientific, e));  // to_string would print 0.000000
  const bool quantised = type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16;
  EXPECT_LE(e, quantised ? kNmseQuantMatmul : kNmseDefault) << ggml_type_name(type) << " x " << n_tokens;
}

// Q, K and V of one type go out as one launch on the GPU; each output must still be its own
// matmul. Mixed types (Q4_K_M's Q6_K V in some layers) split the run.
TEST(CudaOps, SharedInputProjectionsMatchCpu) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  CpuBackend cpu(1);
  const int64_t n_in = 512;
  std::vector<OwnedMatrix> ms;
  ms.push_back(random_matrix(GgmlType::Q4_K, n_in, 256, 41));
  ms.push_back(random_matrix(GgmlType::Q4_K, n_in, 64, 42));
  ms.push_back(random_matrix(GgmlType::Q6_K, n_in, 64, 43));
  ms.push_back(random_matrix(GgmlType::Q4_K, n_in, 64, 44));
  for (int64_t n_tokens : {int64_t(1), int64_t(5)}) {
    const auto x = random_floats(n_tokens * n_in, 45, 2.0f);
    for (bool mixed : {false, true}) {
      const std::vector<const OwnedMatrix*> set = mixed ? std::vector<const OwnedMatrix*>{&ms[0], &ms[1], &ms[2]}
                                                        : std::vector<const OwnedMatrix*>{&ms[0], &ms[1], &ms[3]};
      auto run = [&](Backend& b) {
        const BackendArray<float> bx = in_backend(b, x);
        std::vector<BackendArray<float>> ys;
        std::vector<std::unique_ptr<BackendWeight>> ws;
        std::vector<Projection> ps;
        for (const OwnedMatrix* m : set) {
          ys.emplace_back(b, n_tokens * m->w.n_out);
          ws.push_back(prepared_on(b, m->w));
        }
        for (size_t i = 0; i < set.size(); ++i) ps.push_back({ws[i].get(), ys[i].data()});
        b.project(ps, bx.data(), n_tokens);
        std::vector<std::vector<float>> out;
        for (const auto& y : ys) out.push_back(on_host(y));
        return out;
      };
      const auto a = run(cpu), g = run(*gpu);
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_LE(nmse(a[i], g[i]), kNmseQuantMatmul) << "output " << i << ", " << n_tokens << " tokens"
                                                      << (mixed ? ", mixed types" : "");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmulParity,
                         ::testing::Combine(::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                                              GgmlType::Q8_0, GgmlType::F32, GgmlType::F16,
                                                              GgmlType::BF16),
                                            ::testing::Values(int64_t(1), int64_t(5), int64_t(37), int64_t(100))));

TEST(CudaOps, RmsnormRopeAddEmbedMatchCpu) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  CpuBackend cpu(1);
  const int64_t rows = 6, n = 128;
  const auto x = random_floats(rows * n, 3, 5.0f);
  const auto wv = random_floats(n, 4);
  const NormWeight w{wv.data(), n};
  auto rmsnorm = [&](Backend& b) {
    const BackendArray<float> bx = in_backend(b, x);
    BackendArray<float> by(b, rows * n);
    b.rmsnorm(bx.data(), *prepared_on(b, w), rows, 1e-6f, by.data());
    return on_host(by);
  };
  EXPECT_LE(nmse(rmsnorm(cpu), rmsnorm(*gpu)), kNmseDefault) << "rmsnorm";
  auto rope = [&](Backend& b, int64_t pos0) {
    BackendArray<float> bx = in_backend(b, x);
    b.rope(bx.data(), 3, 2, 64, pos0, 1e6f);
    return on_host(bx);
  };
  for (int64_t pos0 : {int64_t(0), int64_t(4000)}) {  // a deep position: theta accumulation matters
    EXPECT_LE(nmse(rope(cpu, pos0), rope(*gpu, pos0)), kNmseDefault) << "rope at " << pos0;
  }
  auto add = [&](Backend& b) {
    BackendArray<float> bx = in_backend(b, x);
    const BackendArray<float> by = in_backend(b, wv);
    b.add(bx.data(), by.data(), n);
    return on_host(bx);
  };
  EXPECT_EQ(add(cpu), add(*gpu)) << "add";
  // The fused pairs the forward pass issues (the CPU runs them as the two plain ops).
  auto add_rmsnorm = [&](Backend& b) {
    BackendArray<float> bx = in_backend(b, x);
    const BackendArray<float> by = in_backend(b, random_floats(rows * n, 8));
    BackendArray<float> out(b, rows * n);
    b.add_rmsnorm(bx.data(), by.data(), *prepared_on(b, w), rows, 1e-6f, out.data());
    std::vector<float> both = on_host(bx), normed = on_host(out);
    both.insert(both.end(), normed.begin(), normed.end());
    return both;
  };
  EXPECT_LE(nmse(add_rmsnorm(cpu), add_rmsnorm(*gpu)), kNmseDefault) << "add_rmsnorm";
  const std::vector<float> hw = random_floats(64, 9);
  const NormWeight head_w{hw.data(), 64};
  auto rmsnorm_rope = [&](Backend& b) {
    BackendArray<float> bx = in_backend(b, x);  // 3 tokens x 4 heads x 64
    b.rmsnorm_rope(bx.data(), *prepared_on(b, head_w), 3, 4, 1e-6f, 2500, 1e6f);
    return on_host(bx);
  };
  EXPECT_LE(nmse(rmsnorm_rope(cpu), rmsnorm_rope(*gpu)), kNmseDefault) << "rmsnorm_rope";
  // Each table is freed before the next is made: a backend's copy belongs to its handle, so a
  // reused host address cannot bring back an old table's bytes.
  const std::vector<int32_t> tokens = {9, 0, 4};
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K}) {
    const OwnedMatrix table = random_matrix(t, 256, 10, 5);
    auto embed = [&](Backend& b) {
      const BackendArray<int32_t> bt = in_backend(b, tokens);
      BackendArray<float> bx(b, 3 * 256);
      b.embed(*prepared_on(b, table.w, WeightUse::kRowLookup), bt.data(), 3, bx.data());
      return on_host(bx);
    };
    EXPECT_LE(nmse(embed(cpu), embed(*gpu)), kNmseDefault) << "embed " << ggml_type_name(t);
  }
}

// A prefill, then a batch, then single decode tokens on top, through the backend's own cache;
// returns every call's output. Deep enough (n0 > 256) that the GPU splits each head's positions
// into several spans and merges them.
std::vector<float> attention_run(Backend& b, KvType kt, const AttentionShape& s, int64_t n0, int64_t n1) {
  const int64_t kv_dim = s.n_head_kv * s.head_dim, q_dim = s.n_head * s.head_dim;
  const int64_t n_decode = 3, n_all = n0 + n1 + n_decode;
  auto made = b.make_kv_cache({1, s.n_head_kv, s.head_dim, n_all + 5, kt});
  POPPER_CHECK(made.ok(), "make_kv_cache: ", made.ok() ? "" : made.message());
  KvCache& cache = *made.value();
  const auto k = random_floats(n_all * kv_dim, 21), v = random_floats(n_all * kv_dim, 22);
  const auto q = random_floats(n_all * q_dim, 23, 2.0f);
  const BackendArray<float> bk = in_backend(b, k), bv = in_backend(b, v), bq = in_backend(b, q);
  BackendArray<float> out(b, n_all * q_dim);
  std::vector<int64_t> batches = {n0, n1};
  for (int i = 0; i < n_decode; ++i) batches.push_back(1);
  int64_t pos = 0;
  for (int64_t n : batches) {
    EXPECT_TRUE(b.store_kv(cache, 0, pos, n, bk.data() + pos * kv_dim, bv.data() + pos * kv_dim).ok());
    b.attention(cache, 0, bq.data() + pos * q_dim, n, pos, s, out.data() + pos * q_dim);
    cache.commit(pos + n);
    pos += n;
  }
  return on_host(out);
}

TEST(CudaOps, AttentionOverTheCacheMatchesCpuForF32AndF16) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  CpuBackend cpu(1);
  const AttentionShape s{8, 2, 64, 0.125f};
  for (KvType kt : {KvType::kF32, KvType::kF16}) {
    for (int64_t n0 : {int64_t(40), int64_t(700)}) {
      EXPECT_LE(nmse(attention_run(cpu, kt, s, n0, 7), attention_run(*gpu, kt, s, n0, 7)), kNmseDefault)
          << kv_type_name(kt) << ", prefill " << n0;
    }
  }
}

TEST(CudaOps, MoeRoutingAndExpertFfnMatchCpuOnTinyQ4KM) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_001");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  const ModelConfig& c = model.config();
  CpuBackend cpu(1);
  // 1 and 5 tokens take the GPU's host-free path (group-count bounds), 9 and 40 the exact one;
  // at 300 tokens the busiest experts' groups reach the 16-token tiles.
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(9), int64_t(40), int64_t(300)}) {
    const auto x = random_floats(n * c.n_embd, 31 + uint64_t(n), 2.0f);
    const int64_t k = c.n_expert_used;
    struct Out {
      std::vector<int32_t> ids;
      std::vector<float> weights, ffn;
    };
    auto run = [&](Backend& b) {
      const PreparedLayer& L = model_on(model, b).layers[0];
      const BackendArray<float> bx = in_backend(b, x);
      BackendArray<int32_t> ids(b, n * k);
      BackendArray<float> weights(b, n * k), out(b, n * c.n_embd);
      b.moe_route(*L.ffn_gate_inp, bx.data(), n, k, ids.data(), weights.data());
      b.moe_ffn({L.ffn_gate_exps, L.ffn_up_exps, L.ffn_down_exps}, bx.data(), n, ids.data(), weights.data(),
                k, out.data());
      return Out{on_host(ids), on_host(weights), on_host(out)};
    };
    const Out a = run(cpu), b = run(*gpu);
    EXPECT_EQ(a.ids, b.ids) << "experts, " << n << " tokens";
    EXPECT_LE(nmse(a.weights, b.weights), kNmseDefault) << "router weights, " << n << " tokens";
    EXPECT_LE(nmse(a.ffn, b.ffn), kNmseQuantMatmul) << "moe_ffn, " << n << " tokens";
  }
}

TEST(CudaErrors, AKvCacheTooBigForTheDeviceIsAnErrorNamingTheBytes) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  REQUIRE_CUDA(gpu);
  // 2^27 positions x 8 heads x 128 x 4 bytes = 512 GiB for K alone: past any device.
  const auto cache = gpu->make_kv_cache({1, 8, 128, int64_t(1) << 27, KvType::kF32});
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.message().find("bytes"), std::string::npos) << cache.message();
  EXPECT_NE(cache.message().find("free"), std::string::npos) << cache.message();
}

TEST(CudaErrors, SessionBuffersTooBigForTheDeviceAreAnErrorNotACrash) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  // A batch of 2^26 tokens: ~400 GiB of workspace for the tiny model, past any device.
  SessionOptions so;
  so.capacity = int64_t(1) << 26;
  so.max_batch = so.capacity;
  Session s(model, *gpu, so);
  std::vector<float> logits(size_t(model.config().n_vocab));
  const int32_t token = 1;
  const Status st = s.forward({&token, 1}, logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bytes"), std::string::npos) << st.message();
  // The backend is still usable: a session that fits runs.
  SessionOptions small;
  small.capacity = 16;
  Session ok(model, *gpu, small);
  EXPECT_TRUE(ok.forward({&token, 1}, logits.data()).ok());
}

// --- end to end ---------------------------------------------------------------------------------

// Greedy decoding, compared where a comparison means something. With quantised activations a
// last-bit difference upstream (the order of a float sum) can move an activation across a Q8_K /
// Q8_0 rounding boundary, and the logits move with it: the CPU's own scalar and AVX2 kernels,
// which differ only in summation order, give logits up to 0.13 apart on these tiny random models
// (measured on the Q4_K_M and Q8_0 files, 96 teacher-forced steps). A step whose top two CPU
// logits are closer than that is a tie the two backends may break differently; every other step
// must pick the same token. Both backends are fed the CPU's tokens (teacher forcing), so one
// tie does not turn the rest of the run into a comparison of different texts.
constexpr float kTieMarginQuantised = 0.15f;
// F32 weights: no activation quantisation, so only float rounding separates the backends.
constexpr float kTieMarginF32 = 1e-3f;
// A run with fewer decided steps than this says too little: the test fails rather than pass.
constexpr int kMinDecidedSteps = 16;

struct GreedyRun {
  std::vector<int32_t> argmax;  // per step
  std::vector<float> margin;    // top-1 minus top-2 logit, per step
  RoutingTrace routing;
};

// KV positions of the end-to-end sessions: more than one 256-position attention span, so a
// recorded GPU step (spans sized by the capacity) merges live and empty spans.
constexpr int64_t kE2eCapacity = 600;

// Prefills a 9-token prompt and decodes kGreedySteps tokens: the backend's own argmax, or
// `forced` tokens when given. Recording the routing makes the GPU run every step eagerly (a
// recorded step cannot copy mid-way), so the GPU runs once each way.
GreedyRun greedy_run(const Model& model, Backend& b, const std::vector<int32_t>* forced, bool record_routing) {
  const ModelConfig& c = model.config();
  SessionOptions so;
  so.capacity = kE2eCapacity;
  so.record_routing = record_routing && c.is_moe();
  Session s(model, b, so);
  std::vector<float> logits(size_t(c.n_vocab));
  GreedyRun r;
  EXPECT_TRUE(s.forward(test_prompt(9, c.n_vocab, 5), logits.data()).ok());
  for (int i = 0; i < kGreedySteps; ++i) {
    const int32_t best = argmax_token(logits);
    float second = -INFINITY;
    for (int64_t v = 0; v < c.n_vocab; ++v) {
      if (v != best) second = std::max(second, logits[size_t(v)]);
    }
    r.argmax.push_back(best);
    r.margin.push_back(logits[size_t(best)] - second);
    const int32_t t = forced != nullptr ? (*forced)[size_t(i)] : best;
    EXPECT_TRUE(s.forward({&t, 1}, logits.data()).ok());
  }
  r.routing = s.routing();
  return r;
}

class CudaEndToEnd : public ::testing::TestWithParam<testing::TinyModelSpec> {};

TEST_P(CudaEndToEnd, GreedyTokensAndExpertsMatchCpuFor32Steps) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_002");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model(GetParam());
  CpuBackend cpu(1);
  const GreedyRun ref = greedy_run(model, cpu, nullptr, /*record_routing=*/true);
  const GreedyRun got = greedy_run(model, *gpu, &ref.argmax, /*record_routing=*/false);  // graph replays
  const GreedyRun routed = greedy_run(model, *gpu, &ref.argmax, /*record_routing=*/true);
  const float tie = GetParam().quant == SynthQuant::kF32 ? kTieMarginF32 : kTieMarginQuantised;
  int decided = 0, free_running_same = 0;
  bool diverged = false;
  for (int i = 0; i < kGreedySteps; ++i) {
    diverged |= ref.argmax[size_t(i)] != got.argmax[size_t(i)];
    if (!diverged) ++free_running_same;
    if (ref.margin[size_t(i)] < tie) continue;
    ++decided;
    EXPECT_EQ(ref.argmax[size_t(i)], got.argmax[size_t(i)])
        << "step " << i << ": the CPU's top two logits are " << ref.margin[size_t(i)] << " apart";
  }
  RecordProperty("decided_steps", decided);
  RecordProperty("identical_prefix_steps", free_running_same);
  EXPECT_GE(decided, kMinDecidedSteps) << "too few steps are decided for the comparison to mean anything";
  // The experts chosen for the same tokens, at every layer.
  ASSERT_EQ(ref.routing.ids.size(), routed.routing.ids.size());
  for (size_t il = 0; il < ref.routing.ids.size(); ++il) {
    EXPECT_EQ(ref.routing.ids[il], routed.routing.ids[il]) << "experts of layer " << il;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, CudaEndToEnd,
                         ::testing::Values(testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kF32},
                                           testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ8_0},
                                           testing::TinyModelSpec{SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M},
                                           testing::TinyModelSpec{SynthArch::kQwen3, SynthQuant::kQ4_K_M}),
                         [](const auto& info) { return info.param.name(); });

// A recorded decode step (CUDA graph) replays exactly what the eager ops compute: every step's
// logits are bit-identical with recording on and off, and the recorded path was really taken.
TEST(CudaGraphs, ReplayedDecodeStepsGiveTheEagerStepsLogitsBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_002");
  REQUIRE_CUDA(gpu);
  const Model& model = tiny_model({SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M});
  const ModelConfig& c = model.config();
  auto decode = [&](Backend& b) {
    SessionOptions so;
    so.capacity = kE2eCapacity;
    Session s(model, b, so);
    std::vector<float> logits(size_t(c.n_vocab)), all;
    EXPECT_TRUE(s.forward(test_prompt(9, c.n_vocab, 5), logits.data()).ok());
    for (int i = 0; i < 16; ++i) {
      const int32_t t = argmax_token(logits);
      EXPECT_TRUE(s.forward({&t, 1}, logits.data()).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
#ifdef POPPER_HAVE_CUDA
  auto* recorded = dynamic_cast<CudaBackend*>(gpu);
  ASSERT_NE(recorded, nullptr);
  if (!recorded->graphs_enabled()) {
    GTEST_SKIP() << "graph recording is off (POPPER_CUDA_GRAPHS=0 or POPPER_CUDA_PROFILE=1): nothing to compare";
  }
  const std::vector<float> with_graphs = decode(*recorded);
  EXPECT_GT(recorded->graph_replays(), 0u) << "no decode step was replayed from a graph";
  setenv("POPPER_CUDA_GRAPHS", "0", 1);
  auto eager = make_backend(BackendKind::kCuda, 1, nullptr);
  unsetenv("POPPER_CUDA_GRAPHS");
  ASSERT_TRUE(eager.ok()) << eager.message();
  const std::vector<float> without = decode(*eager.value());
  EXPECT_EQ(dynamic_cast<CudaBackend*>(eager.value().get())->graph_replays(), 0u);
  EXPECT_TRUE(with_graphs == without) << "graph replay changed the logits";
#endif
}

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
