// Model benchmarks: decode with the KV cache vs full recompute on tiny qwen3moe (the M32d
// speedup), and prefill / decode at context depths 0, 512 and 4096 on the 30b-a3b shape.
//
// The 30b-a3b files are synthetic (`popper synth`), built on first use into the model cache
// ($POPPER_MODEL_CACHE, else <repo>/.cache/models; never committed). By default the 2-layer
// file (CI size, ~1 GiB); POPPER_BENCH_LAYERS=48 selects the full 48-layer file (~17 GiB, minutes
// to build) for the real figure. POPPER_BENCH_MODEL=<file.gguf> runs the 30b-a3b benchmarks on
// that file instead (the side-by-side with llama.cpp reads one file for every engine,
// scripts/compare_llama_cpp.py). Threads: POPPER_BENCH_THREADS (default all cores).
//
// The 30b-a3b figures follow llama-bench's tests: pp512 = one forward of 512 prompt tokens on an
// empty cache; tg64 at depth d = 64 single-token forwards after d cached positions (the depth
// prefill is not timed).
// Backend: POPPER_BENCH_BACKEND=cpu|cuda|auto (default cpu; Google Benchmark owns argv), made
// once at startup and recorded as the `popper_backend` context entry (the resolved name, so
// auto says what it picked). A bad value or an unusable cuda stops the run with exit 2.
//
// Counters: tok_per_s; bytes_per_token = weight bytes one decode step reads (attention, norms,
// router, n_expert_used experts, one embedding row, the output matrix); weight_GB_per_s =
// bytes_per_token * tok/s; probe_GB_per_s = the streaming-read bandwidth probe with the same
// threads, the bound a CPU decode step cannot beat (CPU backend only: it does not bound a GPU).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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

// Seconds the last loaded_model() call that loaded a file took (open, bind, backend upload).
double& last_load_seconds() {
  static double s = 0;
  return s;
}

// A /proc/self/status field in GB ("VmRSS", "VmHWM"); 0 where unreadable.
double proc_status_gb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::atof(line.c_str() + field.size() + 1) * 1024 / 1e9;  // kB
  }
  return 0;
}

// Memory and load-time counters of the 30b-a3b benchmarks: resident set now and at its peak,
// against the file's size (a CPU backend that repacks weights must stay within file + KV cache).
void memory_counters(benchmark::State& state, const Model& model) {
  state.counters["rss_GB"] = proc_status_gb("VmRSS");
  state.counters["peak_rss_GB"] = proc_status_gb("VmHWM");
  state.counters["file_GB"] = double(model.weights().bytes_total) / 1e9;
  state.counters["load_s"] = last_load_seconds();
}

// Loads a model file once per process; nullptr and a skip message on failure.
const Model* loaded_model(const std::string& path, std::string* error) {
  static std::map<std::string, std::unique_ptr<Model>> loaded;
  auto& slot = loaded[path];
  if (slot) return slot.get();
  const auto start = std::chrono::steady_clock::now();
  auto m = Model::load(path);
  if (!m.ok()) {
    *error = m.message();
    return nullptr;
  }
  if (Status s = prepare_on_backend(*m.value()); !s.ok()) {
    *error = str_cat(backend().name(), " backend: ", s.message());
    return nullptr;
  }
  slot = std::move(m.value());
  last_load_seconds() = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return slot.get();
}

// Loads (building first when missing) a synthetic model; nullptr and a skip message on failure.
const Model* synthetic_model(SynthArch arch, const std::string& preset, int64_t layers, SynthQuant quant,
                             std::string* error) {
  auto path = bench::synthetic_model_file(arch, preset, layers, quant);
  if (!path.ok()) {
    *error = path.message();
    return nullptr;
  }
  return loaded_model(path.value(), error);
}

double probe_gb_per_s() {
  static const double gbs =
      cpu::measure_read_bandwidth(backend().n_threads(), int64_t(512) << 20, 3).gb_per_s;
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
BENCHMARK(BM_M32dSpeedup_TinyMoeQ4KM)
    ->Args({32, 4})
    ->Args({32, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// --- 30b-a3b shape ---------------------------------------------------------------------------

int64_t big_layers() {
  const char* env = std::getenv("POPPER_BENCH_LAYERS");
  return env ? std::atoll(env) : 2;
}

// The 30b-a3b benchmarks' sessions: an f16 KV cache, as llama-bench's default (-ctk/-ctv f16),
// so that depth costs the same bytes in every engine of the side-by-side.
SessionOptions bench_session_options(int64_t capacity) {
  SessionOptions so;
  so.capacity = capacity;
  so.kv_type = KvType::kF16;
  return so;
}

const Model* big_model(benchmark::State& state) {
  std::string error;
  const Model* m = nullptr;
  if (const char* file = std::getenv("POPPER_BENCH_MODEL"); file != nullptr && *file != '\0') {
    m = loaded_model(file, &error);
    if (m != nullptr && !m->config().is_moe()) {
      error =
          str_cat("POPPER_BENCH_MODEL=", file, ": want a MoE model (qwen3moe), got ", m->config().arch->name);
      m = nullptr;
    }
  } else {
    m = synthetic_model(SynthArch::kQwen3Moe, "30b-a3b", big_layers(), SynthQuant::kQ4_K_M, &error);
  }
  if (m == nullptr) state.SkipWithError(error.c_str());
  return m;
}

void BM_Prefill_30bA3bQ4KM(benchmark::State& state) {
  const Model* model = big_model(state);
  if (model == nullptr) return;
  const auto prompt = prompt_tokens(state.range(0), model->config().n_vocab);
  SessionOptions so = bench_session_options(state.range(0));
  so.max_batch = state.range(0);
  Session session(*model, backend(), so);
  std::vector<float> logits(model->config().n_vocab);
  for (auto _ : state) {
    session.cache().truncate(0);
    Status s = session.forward(prompt, logits.data());
    if (!s.ok()) return state.SkipWithError(s.message().c_str());
  }
  state.counters["tok_per_s"] =
      benchmark::Counter(double(state.range(0)) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["layers"] = double(model->config().n_layer);
  memory_counters(state, *model);
}
BENCHMARK(BM_Prefill_30bA3bQ4KM)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// Decode one token at a time on top of `depth` cached positions (the prefill is not timed):
// llama-bench's tg64 at depth d.
void BM_Decode_30bA3bQ4KM(benchmark::State& state) {
  const Model* model = big_model(state);
  if (model == nullptr) return;
  const int64_t depth = state.range(0);
  constexpr int64_t kSteps = 64;
  Session session(*model, backend(), bench_session_options(depth + kSteps + 1));
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
  state.counters["weight_GB_per_s"] =
      benchmark::Counter(bytes * double(tokens) / 1e9, benchmark::Counter::kIsRate);
  if (dynamic_cast<CpuBackend*>(&backend()) != nullptr) state.counters["probe_GB_per_s"] = probe_gb_per_s();
  state.counters["layers"] = double(model->config().n_layer);
  state.counters["kv_cache_GB"] = double(session.cache().bytes()) / 1e9;
  memory_counters(state, *model);
}
// tg64 at depth 0 and at depth d, back to back in each iteration (one untimed prefill of d
// tokens): slowdown = tok/s at depth 0 / tok/s at depth d, the cost of attending over d cached
// positions. Two sessions, so that the shallow run never overwrites the deep one's prefix.
void BM_DepthSlowdown_30bA3bQ4KM(benchmark::State& state) {
  const Model* model = big_model(state);
  if (model == nullptr) return;
  const int64_t depth = state.range(0);
  constexpr int64_t kSteps = 64;
  const int64_t depths[2] = {0, depth};
  std::vector<float> logits(model->config().n_vocab);
  // The prefilled sessions outlive one repetition: each repetition truncates back to its depth,
  // so the (untimed, minutes-long at 48 layers) depth prefill runs once per process and model.
  static std::map<std::pair<const Model*, int64_t>, std::vector<std::unique_ptr<Session>>> prefilled;
  auto& sessions = prefilled[{model, depth}];
  if (sessions.empty()) {
    for (int64_t d : depths) {
      sessions.push_back(std::make_unique<Session>(*model, backend(), bench_session_options(d + kSteps + 1)));
      Status s = sessions.back()->forward(prompt_tokens(d + 1, model->config().n_vocab), logits.data());
      if (!s.ok()) {
        sessions.clear();
        return state.SkipWithError(s.message().c_str());
      }
    }
  }
  double seconds[2] = {0, 0};
  for (auto _ : state) {
    for (int at = 0; at < 2; ++at) {
      Session& session = *sessions[at];
      session.cache().truncate(depths[at] + 1);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < kSteps; ++i) {
        const int32_t tok = argmax_token(logits);
        Status s = session.forward({&tok, 1}, logits.data());
        if (!s.ok()) return state.SkipWithError(s.message().c_str());
      }
      seconds[at] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  const double n = double(kSteps * state.iterations());
  state.counters["tok_per_s_depth0"] = n / seconds[0];
  state.counters["tok_per_s_depth"] = n / seconds[1];
  state.counters["slowdown"] = seconds[1] / seconds[0];
  state.counters["kv_cache_GB"] = double(sessions[1]->cache().bytes()) / 1e9;
  state.counters["layers"] = double(model->config().n_layer);
}
BENCHMARK(BM_DepthSlowdown_30bA3bQ4KM)
    ->Arg(4096)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

BENCHMARK(BM_Decode_30bA3bQ4KM)
    ->Arg(0)
    ->Arg(512)
    ->Arg(4096)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace popper
