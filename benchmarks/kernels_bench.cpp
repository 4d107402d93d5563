// Kernel benchmarks: one dot product in cache (compute speed per path), matrix-vector
// products over weights far larger than the caches (the decode case: memory bandwidth),
// many-token matmuls (prefill) and the raw streaming-read bandwidth they are bounded by.
// bytes_per_second is always weight bytes read, so the JSON reads as GB/s of weights.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/core/rng.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/bandwidth_probe.h"
#include "engine/cpu/flash_attention.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/repack.h"
#include "engine/cpu/vec_dot.h"
#include "engine/quant/traits.h"

namespace popper::cpu {
namespace {

// Real weights rather than random bytes: quantise Gaussian rows with the reference quantiser
// (one row, replicated: the kernels' speed does not depend on the values).
std::vector<uint8_t> weight_rows(GgmlType type, int64_t n_in, int64_t n_rows, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n_in));
  for (auto& v : x) v = rng.normal();
  const int64_t row_bytes = ggml_row_size(type, n_in);
  std::vector<uint8_t> row(static_cast<size_t>(row_bytes));
  quant_traits(type)->quantize_row_ref(x.data(), row.data(), n_in);
  std::vector<uint8_t> out(static_cast<size_t>(row_bytes * n_rows));
  for (int64_t r = 0; r < n_rows; ++r) std::copy(row.begin(), row.end(), out.begin() + r * row_bytes);
  return out;
}

// Enough copies of a matrix that cycling through them reads more than the last-level cache
// (32 MiB on the reference machine; 96 MiB leaves margin), so each matvec streams from DRAM.
constexpr int64_t kColdBytes = int64_t(96) << 20;

// How many copies of `bytes` bytes reach kColdBytes (at least two, so consecutive iterations
// never touch the same copy).
int64_t cold_copies(int64_t bytes) { return std::max<int64_t>(2, (kColdBytes + bytes - 1) / bytes); }

struct ColdMatrices {
  std::vector<uint8_t> bytes;
  std::vector<WeightMatrix> copies;
};

const ColdMatrices& cold_matrices(GgmlType type, int64_t n_in, int64_t n_out) {
  static std::map<std::tuple<GgmlType, int64_t, int64_t>, std::unique_ptr<ColdMatrices>> cache;
  auto& slot = cache[{type, n_in, n_out}];
  if (!slot) {
    slot = std::make_unique<ColdMatrices>();
    const int64_t matrix_bytes = ggml_row_size(type, n_in) * n_out;
    const int64_t n_copies = cold_copies(matrix_bytes);
    slot->bytes = weight_rows(type, n_in, n_out * n_copies, 1);
    for (int64_t c = 0; c < n_copies; ++c) {
      slot->copies.push_back(WeightMatrix::make(type, slot->bytes.data() + c * matrix_bytes, n_in, n_out));
    }
  }
  return *slot;
}

std::vector<float> activations(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = rng.normal();
  return x;
}

// ---- one dot product, hot in L1: compute speed of each path ---------------------------------
void BM_VecDot(benchmark::State& state, GgmlType type) {
  const int64_t n = state.range(0);
  const SimdPath path = state.range(1) ? SimdPath::kAvx2 : SimdPath::kScalar;
  const VecDotFn dot = vec_dot_fn(type, path);
  if (dot == nullptr) {
    state.SkipWithError("path not available on this CPU");
    return;
  }
  const auto w = weight_rows(type, n, 1, 2);
  QuantizedActivations a;
  const auto x = activations(n, 3);
  a.quantize(x.data(), 1, n, n, quant_traits(type)->vec_dot_type);
  for (auto _ : state) benchmark::DoNotOptimize(dot(n, w.data(), a.row(0)));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.SetLabel(simd_path_name(path));
}

// ---- the same on weights repacked into the x8 layouts (engine/cpu/repack.h) -----------------

struct PackedCold {
  std::vector<uint8_t> bytes;
  std::vector<PackedMatrix> copies;
};

const PackedCold& packed_cold(GgmlType type, int64_t n_in, int64_t n_out) {
  static std::map<std::tuple<GgmlType, int64_t, int64_t>, std::unique_ptr<PackedCold>> cache;
  auto& slot = cache[{type, n_in, n_out}];
  if (!slot) {
    const ColdMatrices& file = cold_matrices(type, n_in, n_out);
    slot = std::make_unique<PackedCold>();
    slot->bytes.resize(file.bytes.size());
    const int64_t matrix_bytes = file.copies[0].row_bytes * n_out;
    for (size_t c = 0; c < file.copies.size(); ++c) {
      uint8_t* dst = slot->bytes.data() + c * matrix_bytes;
      repack_rows(type, file.copies[c].data, n_in, n_out, dst);
      slot->copies.push_back(PackedMatrix::make(type, dst, n_in, n_out));
    }
  }
  return *slot;
}

struct PackedLayout {
  static const PackedCold& cold(GgmlType type, int64_t n_in, int64_t n_out) {
    return packed_cold(type, n_in, n_out);
  }
  static int64_t bytes(const PackedMatrix& w) { return w.group_bytes * (w.n_out / kPackRows); }
  static void run(const PackedMatrix& w, const QuantizedActivations& a, float* y, ThreadPool& pool) {
    packed_matmul(w, a, y, w.n_out, pool);
  }
};

// ---- matrix x vector over cold weights: the decode step --------------------------------------
// The file's layout (matmul) or the x8 repacked one (packed_matmul), same shapes and bytes.

struct FileLayout {
  static const ColdMatrices& cold(GgmlType type, int64_t n_in, int64_t n_out) {
    return cold_matrices(type, n_in, n_out);
  }
  static int64_t bytes(const WeightMatrix& w) { return w.row_bytes * w.n_out; }
  static void run(const WeightMatrix& w, const QuantizedActivations& a, float* y, ThreadPool& pool) {
    matmul(w, a, y, w.n_out, pool);
  }
};

template <class Layout>
void BM_Matvec(benchmark::State& state, GgmlType type) {
  const int64_t n_out = state.range(0), n_in = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const auto& m = Layout::cold(type, n_in, n_out);
  ThreadPool pool(threads);
  const auto x = activations(n_in, 4);
  QuantizedActivations a;
  std::vector<float> y(static_cast<size_t>(n_out));
  size_t next = 0;
  for (auto _ : state) {
    // Quantising the activation row is part of every decode matvec, so it is timed too.
    a.quantize(x.data(), 1, n_in, n_in, quant_traits(type)->vec_dot_type);
    Layout::run(m.copies[next], a, y.data(), pool);
    next = (next + 1) % m.copies.size();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * Layout::bytes(m.copies[0]));
}

// ---- many tokens: the prefill case -------------------------------------------------------------
template <class Layout>
void BM_Matmul(benchmark::State& state, GgmlType type) {
  const int64_t tokens = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const int64_t n_in = 2048, n_out = 2048;
  const auto& m = Layout::cold(type, n_in, n_out);
  ThreadPool pool(threads);
  const auto x = activations(tokens * n_in, 5);
  QuantizedActivations a;
  a.quantize(x.data(), tokens, n_in, n_in, quant_traits(type)->vec_dot_type, &pool);
  std::vector<float> y(static_cast<size_t>(tokens * n_out));
  size_t next = 0;
  for (auto _ : state) {
    Layout::run(m.copies[next], a, y.data(), pool);
    next = (next + 1) % m.copies.size();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * Layout::bytes(m.copies[0]));
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(tokens * state.iterations()), benchmark::Counter::kIsRate);
}

// ---- attention of one kv head's query group over a cached depth (a decode step's inner op) ------
// cold = 0: one kv head, in cache (the kernel's compute speed). cold = 1: as in a decode step,
// enough kv heads that cycling through them reads past the last-level cache, each a slice of a
// cache whose capacity exceeds the depth (the values' row stride is the capacity, not n_kv).
void BM_Attention_F16(benchmark::State& state) {
  const int64_t n_kv = state.range(0), group = state.range(1), hd = 128;
  const SimdPath path = state.range(2) ? SimdPath::kAvx2 : SimdPath::kScalar;
  const bool cold = state.range(3) != 0;
  const int64_t capacity = cold ? n_kv + 65 : n_kv;  // model_bench's depth + 64 steps + 1
  const int64_t head_elems = capacity * hd;
  const int64_t n_heads = cold ? cold_copies(2 * head_elems * int64_t(sizeof(uint16_t))) : 1;  // K and V
  Rng rng(7);
  std::vector<uint16_t> k(static_cast<size_t>(n_heads * head_elems)), v(k.size());
  for (auto& e : k) e = f32_to_fp16(rng.normal());
  for (auto& e : v) e = f32_to_fp16(rng.normal());
  std::vector<float> q(static_cast<size_t>(group * hd)), out(q.size());
  for (auto& e : q) e = rng.normal();
  int64_t head = 0;
  for (auto _ : state) {
    const size_t at = static_cast<size_t>(head * head_elems);
    const KvHeadView kv{GgmlType::F16, reinterpret_cast<const uint8_t*>(k.data() + at),
                        reinterpret_cast<const uint8_t*>(v.data() + at), capacity, hd};
    attention_head_group(q.data(), group, kv, n_kv, 0.088f, out.data(), path);
    benchmark::DoNotOptimize(out.data());
    head = (head + 1) % n_heads;
  }
  state.SetBytesProcessed(state.iterations() * n_kv * hd * 2 * 2);  // K and V bytes
  state.SetLabel(simd_path_name(path));
}

// ---- raw streaming read: the bound a decode step cannot beat -----------------------------------
void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  constexpr int64_t kBytes = int64_t(256) << 20;
  double best = 0;
  for (auto _ : state) {
    const BandwidthResult r = measure_read_bandwidth(threads, kBytes, 3);
    best = std::max(best, r.gb_per_s);
    state.SetIterationTime(static_cast<double>(r.bytes) / (r.median_gb_per_s * 1e9));
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
  state.counters["best_gb_per_s"] = best;
}

void register_all() {
  struct Type {
    GgmlType type;
    const char* name;
  };
  const Type types[] = {{GgmlType::Q4_K, "Q4_K"}, {GgmlType::Q5_K, "Q5_K"}, {GgmlType::Q6_K, "Q6_K"},
                        {GgmlType::Q8_0, "Q8_0"}, {GgmlType::F16, "F16"},   {GgmlType::BF16, "BF16"},
                        {GgmlType::F32, "F32"}};
  for (const auto& t : types) {
    benchmark::RegisterBenchmark((std::string("BM_VecDot_") + t.name).c_str(), BM_VecDot, t.type)
        ->ArgNames({"n", "simd"})
        ->Args({4096, 0})
        ->Args({4096, 1});
    auto* mv = benchmark::RegisterBenchmark((std::string("BM_Matvec_") + t.name).c_str(),
                                            BM_Matvec<FileLayout>, t.type)
                   ->ArgNames({"rows", "cols", "threads"})
                   ->UseRealTime();
    for (int threads : {1, 2}) {
      mv->Args({2048, 2048, threads});
      if (t.type == GgmlType::Q4_K || t.type == GgmlType::Q6_K || t.type == GgmlType::Q5_K) {
        mv->Args({768, 2048, threads});  // expert gate/up: n_ff_exp x n_embd
        mv->Args({2048, 768, threads});  // expert down
      }
      if (t.type == GgmlType::Q4_K) mv->Args({8192, 4096, threads});  // 18.9 MB, one matrix
    }
  }
  for (const auto& t : types) {
    if (!has_packed_layout(t.type)) continue;
    auto* pmv = benchmark::RegisterBenchmark((std::string("BM_PackedMatvec_") + t.name).c_str(),
                                             BM_Matvec<PackedLayout>, t.type)
                    ->ArgNames({"rows", "cols", "threads"})
                    ->UseRealTime();
    for (int threads : {1, 2}) {
      pmv->Args({2048, 2048, threads});
      if (t.type != GgmlType::Q8_0) {
        pmv->Args({768, 2048, threads});
        pmv->Args({2048, 768, threads});
      }
      if (t.type == GgmlType::Q4_K) pmv->Args({8192, 4096, threads});
    }
  }
  auto* pmm = benchmark::RegisterBenchmark("BM_PackedMatmul_Q4_K", BM_Matmul<PackedLayout>, GgmlType::Q4_K)
                  ->ArgNames({"tokens", "threads"})
                  ->UseRealTime();
  for (int tokens : {16, 64, 128, 512}) pmm->Args({tokens, 2});
  pmm->Args({64, 1})->Args({512, 1});
  benchmark::RegisterBenchmark("BM_PackedMatmul_Q6_K", BM_Matmul<PackedLayout>, GgmlType::Q6_K)
      ->ArgNames({"tokens", "threads"})
      ->UseRealTime()
      ->Args({64, 2});
  // Q5_K (attn_output under llama.cpp's Q4_K_M recipe): a prefill in either layout.
  benchmark::RegisterBenchmark("BM_PackedMatmul_Q5_K", BM_Matmul<PackedLayout>, GgmlType::Q5_K)
      ->ArgNames({"tokens", "threads"})
      ->UseRealTime()
      ->Args({64, 1});
  benchmark::RegisterBenchmark("BM_Matmul_Q5_K", BM_Matmul<FileLayout>, GgmlType::Q5_K)
      ->ArgNames({"tokens", "threads"})
      ->UseRealTime()
      ->Args({64, 1});
  auto* mm = benchmark::RegisterBenchmark("BM_Matmul_Q4_K", BM_Matmul<FileLayout>, GgmlType::Q4_K)
                 ->ArgNames({"tokens", "threads"})
                 ->UseRealTime();
  for (int tokens : {16, 64, 128, 512}) mm->Args({tokens, 2});
  mm->Args({64, 1})->Args({512, 1});
  benchmark::RegisterBenchmark("BM_Matmul_Q6_K", BM_Matmul<FileLayout>, GgmlType::Q6_K)
      ->ArgNames({"tokens", "threads"})
      ->UseRealTime()
      ->Args({64, 2});
  benchmark::RegisterBenchmark("BM_Attention_F16", BM_Attention_F16)
      ->ArgNames({"n_kv", "group", "simd", "cold"})
      ->Args({512, 8, 1, 0})
      ->Args({4096, 8, 1, 0})
      ->Args({4096, 8, 1, 1})
      ->Args({4096, 8, 0, 0});
  benchmark::RegisterBenchmark("BM_ReadBandwidth", BM_ReadBandwidth)
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->UseManualTime()
      ->Iterations(2);
}

const bool registered = (register_all(), true);

}  // namespace
}  // namespace popper::cpu
