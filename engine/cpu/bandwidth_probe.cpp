#include "engine/cpu/bandwidth_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/core/cpu_features.h"
#include "engine/core/result.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/kernels.h"

namespace popper::cpu {
namespace {

constexpr int64_t kSliceAlign = 128;  // avx2::read_stream reads 128 bytes per step

uint64_t read_stream_scalar(const uint8_t* p, int64_t bytes) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i < bytes; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 ^= v[0];
    a1 ^= v[1];
    a2 ^= v[2];
    a3 ^= v[3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

BandwidthResult measure_read_bandwidth(int n_threads, int64_t bytes, int repetitions) {
  POPPER_CHECK(n_threads >= 1 && repetitions >= 1 && bytes >= kSliceAlign * n_threads, "threads ", n_threads,
               " bytes ", bytes, " repetitions ", repetitions);
  const int64_t slice = bytes / n_threads / kSliceAlign * kSliceAlign;
  const int64_t total = slice * n_threads;
  std::unique_ptr<uint8_t, FreeDeleter> buffer(
      static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(total))));
  POPPER_CHECK(buffer != nullptr, "cannot allocate ", total, " bytes");
  ThreadPool pool(n_threads);
  // Each thread first-touches its own slice (page placement) with non-zero bytes.
  pool.run([&](int t) { std::memset(buffer.get() + t * slice, 0x5A + t, static_cast<size_t>(slice)); });
  const bool simd = cpu_features().has_avx2_fma();
  std::atomic<uint64_t> sink{0};
  std::vector<double> rates;
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    pool.run([&](int t) {
      const uint8_t* p = buffer.get() + t * slice;
      sink.fetch_xor(simd ? avx2::read_stream(p, slice) : read_stream_scalar(p, slice),
                     std::memory_order_relaxed);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(total) / seconds / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  BandwidthResult r;
  r.gb_per_s = rates.back();
  r.median_gb_per_s = rates[rates.size() / 2];
  r.bytes = total;
  r.threads = n_threads;
  return r;
}

}  // namespace popper::cpu
