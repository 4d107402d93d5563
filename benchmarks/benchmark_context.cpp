// The shared main() of every Popper benchmark: Google Benchmark plus a custom context block
// (git commit, CPU model, SIMD path, streaming-read bandwidth) so each JSON file says where
// its numbers came from and what the memory-bound ceiling of this machine is. Executables add
// their own entries through startup hooks (benchmark_context.h).
#include "benchmarks/benchmark_context.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/cpu_features.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/bandwidth_probe.h"
#include "engine/cpu/vec_dot.h"

#ifndef POPPER_GIT_COMMIT
#define POPPER_GIT_COMMIT "unknown"
#endif

namespace {

// 128 MiB (4x the reference machine's L3) read 3 times: ~0.3 s including the first touch.
constexpr int64_t kProbeBytes = int64_t(128) << 20;
constexpr int kProbeRepetitions = 3;

std::string format_gb(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// Function-local so that hooks registered during static initialisation find it constructed.
std::vector<popper::bench::StartupHook>& startup_hooks() {
  static std::vector<popper::bench::StartupHook> hooks;
  return hooks;
}

// The context's "device" entry (set_device).
std::string& device_entry() {
  static std::string device = "cpu";
  return device;
}

}  // namespace

namespace popper::bench {
void set_device(std::string device) { device_entry() = std::move(device); }

bool add_startup_hook(StartupHook hook) {
  startup_hooks().push_back(std::move(hook));
  return true;
}
}  // namespace popper::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (const auto& hook : startup_hooks()) {
    const popper::Status s = hook();
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[0], s.message().c_str());
      return 2;
    }
  }
  benchmark::AddCustomContext("popper_git_commit", POPPER_GIT_COMMIT);
  benchmark::AddCustomContext("cpu_model", popper::cpu_model_name());
  benchmark::AddCustomContext("cpu_features", popper::cpu_features_string());
  benchmark::AddCustomContext("simd_path", popper::simd_level());
  benchmark::AddCustomContext("kernel_path", popper::cpu::simd_path_name(popper::cpu::active_simd_path()));
  benchmark::AddCustomContext("device", device_entry());
  const int threads = popper::ThreadPool::hardware_threads();
  const auto bw = popper::cpu::measure_read_bandwidth(threads, kProbeBytes, kProbeRepetitions);
  benchmark::AddCustomContext("read_bandwidth_threads", std::to_string(threads));
  benchmark::AddCustomContext("read_bandwidth_gb_per_s", format_gb(bw.gb_per_s));
  benchmark::AddCustomContext("read_bandwidth_median_gb_per_s", format_gb(bw.median_gb_per_s));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
