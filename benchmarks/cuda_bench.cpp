// CUDA backend benchmarks on the synthetic 30b-a3b Q4_K_M: decode tok/s at depths 0 and 4096 and
// pp512 prefill tok/s at depths 0 and 4096, with achieved weight GB/s against the device's peak.
// Same counters as model_bench's CPU figures (tok_per_s, bytes_per_token, weight_GB_per_s), plus
// device_peak_GB_per_s and roofline_fraction.
//
// POPPER_BENCH_LAYERS: layers of the synthetic file (default 2, the CI size; 48 = the full model).
// POPPER_MODEL_CACHE: where synthetic files are built on first use (else <repo>/.cache/models).
// Without a GPU (or CUDA in this binary) every benchmark skips with the reason.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "benchmarks/benchmark_context.h"
#include "benchmarks/synthetic_models.h"
#include "engine/core/rng.h"
#include "engine/model/backend_factory.h"
#include "engine/model/generate.h"
#include "engine/model/model.h"
#include "engine/synth/synth.h"
#ifdef POPPER_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace popper {
namespace {

int64_t bench_layers() {
  const char* env = std::getenv("POPPER_BENCH_LAYERS");
  return env ? std::atoll(env) : 2;
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  double peak_gb_per_s = 0;
  std::string error;
};

// The model (built when missing) with its weights on the GPU; error set on failure.
Loaded& loaded() {
  static Loaded l = [] {
    Loaded r;
    if (!cuda_backend_compiled()) {
      r.error = "built without the CUDA backend";
      return r;
    }
    auto path = bench::synthetic_model_file(SynthArch::kQwen3Moe, "30b-a3b", bench_layers(), SynthQuant::kQ4_K_M);
    if (!path.ok()) {
      r.error = path.message();
      return r;
    }
    auto m = Model::load(path.value());
    if (!m.ok()) {
      r.error = m.message();
      return r;
    }
    r.model = std::move(m.value());
    auto b = make_backend(BackendKind::kCuda, 1, r.model.get());
    if (!b.ok()) {
      r.error = b.message();
      return r;
    }
    r.backend = std::move(b.value());
#ifdef POPPER_HAVE_CUDA
    r.peak_gb_per_s = static_cast<CudaBackend*>(r.backend.get())->device_info().peak_gb_per_s;
#endif
    return r;
  }();
  return l;
}

uint64_t graph_replays([[maybe_unused]] const Loaded& l) {
#ifdef POPPER_HAVE_CUDA
  return static_cast<const CudaBackend*>(l.backend.get())->graph_replays();
#else
  return 0;
#endif
}

void reset_profile([[maybe_unused]] Loaded& l) {
#ifdef POPPER_HAVE_CUDA
  static_cast<CudaBackend*>(l.backend.get())->reset_profile();
#endif
}

// With POPPER_CUDA_PROFILE=1: GPU milliseconds per token of each backend op, as counters
// (op_ms_<op>) and as a table on stderr, so one run shows where a step's time goes.
void report_profile([[maybe_unused]] Loaded& l, [[maybe_unused]] benchmark::State& state,
                    [[maybe_unused]] int64_t tokens, [[maybe_unused]] const char* what) {
#ifdef POPPER_HAVE_CUDA
  auto* b = static_cast<CudaBackend*>(l.backend.get());
  if (!b->profiling() || tokens == 0) return;
  double total = 0;
  const auto prof = b->profile();
  for (const auto& [op, t] : prof) total += t.ms;
  std::fprintf(stderr, "%s at depth %lld: GPU time per token by op (eager steps, events around each op)\n", what,
               static_cast<long long>(state.range(0)));
  for (const auto& [op, t] : prof) {
    const double per_token = t.ms / double(tokens);
    state.counters["op_ms_" + op] = per_token;
    std::fprintf(stderr, "  %-14s %9.4f ms  %5.1f%%  %7.1f calls\n", op.c_str(), per_token, 100.0 * t.ms / total,
                 double(t.calls) / double(tokens));
  }
  std::fprintf(stderr, "  %-14s %9.4f ms\n", "all ops", total / double(tokens));
#endif
}

// The JSON context's "device": the GPU's name, or why there is none.
Status name_device() {
#ifdef POPPER_HAVE_CUDA
  auto info = cuda::init();
  bench::set_device(info.ok() ? "cuda: " + info.value().name : "none (" + info.message() + ")");
#else
  bench::set_device("none (built without the CUDA backend)");
#endif
  return Status();
}
[[maybe_unused]] const bool kDeviceHookRegistered = bench::add_startup_hook(name_device);

std::vector<int32_t> prompt_tokens(int64_t n, int64_t n_vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (auto& t : p) t = int32_t(rng.below(uint64_t(n_vocab)));
  return p;
}

// Prefill 512 tokens on top of `depth` cached positions (the depth's prefill is not timed).
void BM_CudaPrefill_30bA3bQ4KM(benchmark::State& state) {
  Loaded& l = loaded();
  if (!l.error.empty()) return state.SkipWithError(l.error.c_str());
  const int64_t n = 512, depth = state.range(0);
  const ModelConfig& c = l.model->config();
  SessionOptions so;
  so.capacity = depth + n;
  so.max_batch = n;
  Session s(*l.model, *l.backend, so);
  std::vector<float> logits(size_t(c.n_vocab));
  const auto ctx = prompt_tokens(depth + n, c.n_vocab, 42);
  std::span<const int32_t> all(ctx);
  if (depth > 0) {
    if (Status st = s.forward(all.subspan(0, size_t(depth)), logits.data()); !st.ok()) {
      return state.SkipWithError(st.message().c_str());
    }
  }
  reset_profile(l);
  for (auto _ : state) {
    s.cache().truncate(depth);
    if (Status st = s.forward(all.subspan(size_t(depth)), logits.data()); !st.ok()) {
      return state.SkipWithError(st.message().c_str());
    }
  }
  state.counters["tok_per_s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["layers"] = double(c.n_layer);
  report_profile(l, state, n * int64_t(state.iterations()), "prefill");
}
BENCHMARK(BM_CudaPrefill_30bA3bQ4KM)->Arg(0)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

// Decode one token at a time on top of `depth` cached positions.
void BM_CudaDecode_30bA3bQ4KM(benchmark::State& state) {
  Loaded& l = loaded();
  if (!l.error.empty()) return state.SkipWithError(l.error.c_str());
  const int64_t depth = state.range(0);
  constexpr int64_t kSteps = 16;
  const ModelConfig& c = l.model->config();
  SessionOptions so;
  so.capacity = depth + kSteps + 1;
  Session s(*l.model, *l.backend, so);
  std::vector<float> logits(size_t(c.n_vocab));
  if (Status st = s.forward(prompt_tokens(depth + 1, c.n_vocab, 43), logits.data()); !st.ok()) {
    return state.SkipWithError(st.message().c_str());
  }
  int64_t tokens = 0;
  const uint64_t replays0 = graph_replays(l);
  reset_profile(l);
  for (auto _ : state) {
    s.cache().truncate(depth + 1);
    for (int64_t i = 0; i < kSteps; ++i) {
      const int32_t tok = argmax_token(logits);
      if (Status st = s.forward({&tok, 1}, logits.data()); !st.ok()) return state.SkipWithError(st.message().c_str());
    }
    tokens += kSteps;
  }
  const double bytes = double(weight_bytes_per_token(l.model->weights(), c));
  state.counters["tok_per_s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsRate);
  state.counters["bytes_per_token"] = bytes;
  state.counters["weight_GB_per_s"] = benchmark::Counter(bytes * double(tokens) / 1e9, benchmark::Counter::kIsRate);
  state.counters["device_peak_GB_per_s"] = l.peak_gb_per_s;
  if (l.peak_gb_per_s > 0) {
    state.counters["roofline_fraction"] =
        benchmark::Counter(bytes * double(tokens) / 1e9 / l.peak_gb_per_s, benchmark::Counter::kIsRate);
  }
  state.counters["layers"] = double(c.n_layer);
  // Steps replayed from a CUDA graph: all but the first two of each session when graphs work.
  state.counters["graph_replays"] = double(graph_replays(l) - replays0);
  report_profile(l, state, tokens, "decode");
}
BENCHMARK(BM_CudaDecode_30bA3bQ4KM)->Arg(0)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace
}  // namespace popper
