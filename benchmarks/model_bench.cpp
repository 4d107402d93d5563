// Model benchmarks: decode with the KV cache vs full recompute on tiny qwen3moe (the M32d
// speedup), and prefill / decode at context depths 0, 512 and 4096 on the 30b-a3b shape.
//
// The 30b-a3b files are synthetic (`popper synth`), built on first use into the model cache
// ($POPPER_MODEL_CACHE, else <repo>/.cache/models; never committed). By default the 2-layer
// file (CI size, ~1 GiB); POPPER_BENCH_LAYERS=48 selects the full 48-layer file (~17 GiB, minutes
// to build) for the real figure. Threads: POPPER_BENCH_THREADS (default all cores).
// Backend: POPPER_BENCH_BACKEND=cpu|cuda|auto (default cpu; Google Benchmark owns argv), made
// once at startup and recorded as the `popper_backend` context entry (the resolved name, so
// auto says what it picked). A bad value or an unusable cuda stops the run with exit 2.
//
// Counters: tok_per_s; bytes_per_token = weight bytes one decode step reads (attention, norms,
// router, n_expert_used experts, one embedding row, the output matrix); weight_GB_per_s =
// bytes_per_token * tok/s; probe_GB_per_s = the streaming-read bandwidth probe with the same
// threads, the bound a CPU decode step cannot beat (CPU backend only: it does not bound a GPU).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>

#include "benchmarks/benchmark_context.h"
#include "benchmarks/synthetic_models.h"
#include "engine/core/rng.h"
#include "engine/cpu/bandwidth_probe.h"
#include "engine/model/backend_factory.h"
#include "engine/model/cpu_backend.h"
#include "engine/model/generate.h"
#include "engine/model/model.h"
#include "engine/synth/synth.h"
#ifdef POPPER_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace popper {
namespace {

int bench_threads() {
  const char* env = std::getenv("POPPER_BENCH_THREADS");
  return env ? std::atoi(env) : 0;
}

// The backend every benchmark here runs on, made by the startup hook below.
std::unique_ptr<Backend>& backend_slot() {
  static std::unique_ptr<Backend> b;
  return b;
}

Backend& backend() { return *backend_slot(); }

Status make_bench_backend() {
  const char* env = std::getenv("POPPER_BENCH_BACKEND");
  const std::string name = env != nullptr && *env != '\0' ? env : "cpu";
  auto kind = parse_backend_kind(name);
  if (!kind.ok()) return make_error("POPPER_BENCH_BACKEND: want cpu, cuda or auto, got '", name, "'");
  auto b = make_backend(kind.value(), bench_threads(), nullptr);
  if (!b.ok()) return make_error("POPPER_BENCH_BACKEND=", name, ": ", b.message());
  backend_slot() = std::move(b.value());
  benchmark::AddCustomContext("popper_backend", backend().name());
#ifdef POPPER_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend()))
    bench::set_device("cuda: " + cuda->device_info().name);
#endif
  return Status();
}
[[maybe_unused]] const bool kBackendHookRegistered = bench::add_startup_hook(make_bench_backend);

// The backend takes a model's weights when the model is loaded, so that no timed iteration pays
// for preparing them (an upload to a device; it would otherwise happen in the first session).
Status prepare_on_backend(const Model& model) {
  auto w = model.weights_on(backend());
  if (!w.ok()) return w.error();
  return Status();
}

// Loads (building first when missing) a synthetic model; nullptr and a skip message on failure.
const Model* synthetic_model(SynthArch arch, const std::string& preset, int64_t layers, SynthQuant quant,
                             std::string* error) {
  static std::map<std::string, std::unique_ptr<Model>> loaded;
  auto path = bench::synthetic_model_file(arch, preset, layers, quant);
  if (!path.ok()) {
    *error = path.message();
    return nullptr;
  }
  auto& slot = loaded[path.value()];
  if (slot) return slot.get();
  auto m = Model::load(path.value());
  if (!m.ok()) {
    *error = m.message();
    return nullptr;
  }
  if (Status s = prepare_on_backend(*m.value()); !s.ok()) {
    *error = str_cat(backend().name(), " backend: ", s.message());
    return nullptr;
  }
  slot = std::move(m.value());
  return slot.get();
}

double probe_gb_per_s() {
  static const double gbs = cpu::measure_read_bandwidth(backend().n_threads(), int64_t(512) << 20, 3).gb_per_s;
  return gbs;
}

std::vector<int32_t> prompt_tokens(int64_t n, int64_t n_vocab) {
  Rng rng(42);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = int32_t(rng.below(uint64_t(n_vocab)));
  return p;
}

// --- M32d: decode 32 tokens with and without the cache on tiny qwen3moe ---------------------

void decode_tiny(benchmark::State& state, bool use_cache) {
  std::string error;
  const Model* model = synthetic_model(SynthArch::kQwen3Moe, "tiny", 0, SynthQuant::kQ4_K_M, &error);
  if (model == nullptr) return state.SkipWithError(error.c_str());
  const auto prompt = prompt_tokens(8, model->config().n_vocab);
  GenerateOptions opt;
  opt.max_tokens = state.range(0);
  opt.use_cache = use_cache;
  int64_t steps = 0;
  double decode_s = 0;
  for (auto _ : state) {
    auto r = generate(*model, backend(), prompt, opt);
    if (!r.ok()) return state.SkipWithError(r.message().c_str());
    steps += r->decode_steps;
    decode_s += r->decode_seconds;
  }
  state.counters["decode_tok_per_s"] = decode_s > 0 ? double(steps) / decode_s : 0;
  state.counters["threads"] = backend().n_threads();
}

void BM_DecodeCached_TinyMoeQ4KM(benchmark::State& state) { decode_tiny(state, true); }
void BM_DecodeNoCache_TinyMoeQ4KM(benchmark::State& state) { decode_tiny(state, false); }
BENCHMARK(BM_DecodeCached_TinyMoeQ4KM)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecodeNoCache_TinyMoeQ4KM)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

// The M32d claim as one figure: decode tok/s with the cache over decode tok/s with full
// recompute, same model, prompt and token count, measured back to back. Args: tokens generated,
// prompt length (recompute cost grows with it; the seed's reference prompt had 4 tokens).
void BM_M32dSpeedup_TinyMoeQ4KM(benchmark::State& state) {
  std::string error;
  const Model* model = synthetic_model(SynthArch::kQwen3Moe, "tiny", 0, SynthQuant::kQ4_K_M, &error);
  if (model == nullptr) return state.SkipWithError(error.c_str());
  const auto prompt = prompt_tokens(state.range(1), model->config().n_vocab);
  GenerateOptions opt;
  opt.max_tokens = state.range(0);
  double cached_s = 0, full_s = 0;
  int64_t cached_steps = 0, full_steps = 0;
  for (auto _ : state) {
    opt.use_cache = true;
    auto a = generate(*model, backend(), prompt, opt);
    opt.use_cache = false;
    auto b = generate(*model, backend(), prompt, opt);
    if (!a.ok() || !b.ok()) return state.SkipWithError("generate failed");
    if (a->tokens != b->tokens) return state.SkipWithError("cached and recomputed tokens differ");
    cached_s += a->decode_seconds;
    cached_steps += a->decode_steps;
    full_s += b->decode_seconds;
    full_steps += b->decode_steps;
  }
  const double cached = double(cached_steps) / cached_s, full = double(full_steps) / full_s;
  state.counters["cached_tok_per_s"] = cached;
  state.counters["recompute_tok_per_s"] = full;
  state.counters["speedup"] = cached / full;
}
BENCHMARK(BM_M32dSpeedup_TinyMoeQ4KM)->Args({32, 4})->Args({32, 64})->Unit(benchmark::kMillisecond)->UseRealTime();

// --- 30b-a3b shape ---------------------------------------------------------------------------

int64_t big_layers() {
  const char* env = std::getenv("POPPER_BENCH_LAYERS");
  return env ? std::atoll(env) : 2;
}

const Model* big_model(benchmark::State& state) {
  std::string error;
  const Model* m = synthetic_model(SynthArch::kQwen3Moe, "30b-a3b", big_layers(), SynthQuant::kQ4_K_M, &error);
  if (m == nullptr) state.SkipWithError(error.c_str());
  return m;
}

void BM_Prefill_30bA3bQ4KM(benchmark::State& state) {
  const Model* model = big_model(state);
  if (model == nullptr) return;
  const auto prompt = prompt_tokens(state.range(0), model->config().n_vocab);
  SessionOptions so;
  so.capacity = state.range(0);
  so.max_batch = state.range(0);
  Session session(*model, backend(), so);
  std::vector<float> logits(model->config().n_vocab);
  for (auto _ : state) {
    session.cache().truncate(0);
    Status s = session.forward(prompt, logits.data());
    if (!s.ok()) return state.SkipWithError(s.message().c_str());
  }
  state.counters["tok_per_s"] = benchmark::Counter(double(state.range(0)) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["layers"] = double(model->config().n_layer);
}
BENCHMARK(BM_Prefill_30bA3bQ4KM)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// Decode one token at a time on top of `depth` cached positions (the prefill is not timed).
void BM_Decode_30bA3bQ4KM(benchmark::State& state) {
  const Model* model = big_model(state);
  if (model == nullptr) return;
  const int64_t depth = state.range(0);
  constexpr int64_t kSteps = 8;
  SessionOptions so;
  so.capacity = depth + kSteps + 1;
  Session session(*model, backend(), so);
  std::vector<float> logits(model->config().n_vocab);
  const auto prompt = prompt_tokens(depth + 1, model->config().n_vocab);
  Status s = session.forward(prompt, logits.data());
  if (!s.ok()) return state.SkipWithError(s.message().c_str());
  int64_t tokens = 0;
  for (auto _ : state) {
    session.cache().truncate(depth + 1);
    for (int64_t i = 0; i < kSteps; ++i) {
      const int32_t tok = argmax_token(logits);
      s = session.forward({&tok, 1}, logits.data());
      if (!s.ok()) return state.SkipWithError(s.message().c_str());
    }
    tokens += kSteps;
  }
  const double bytes = double(weight_bytes_per_token(model->weights(), model->config()));
  state.counters["tok_per_s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsRate);
  state.counters["bytes_per_token"] = bytes;
  state.counters["weight_GB_per_s"] = benchmark::Counter(bytes * double(tokens) / 1e9, benchmark::Counter::kIsRate);
  if (dynamic_cast<CpuBackend*>(&backend()) != nullptr) state.counters["probe_GB_per_s"] = probe_gb_per_s();
  state.counters["layers"] = double(model->config().n_layer);
}
BENCHMARK(BM_Decode_30bA3bQ4KM)->Arg(0)->Arg(512)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace
}  // namespace popper
