// The shared main() of every Popper benchmark: Google Benchmark plus a custom context block
// (git commit, CPU model, SIMD path) so each JSON file says where its numbers came from.
#include <benchmark/benchmark.h>

#include <thread>

#include "engine/core/cpu_features.h"

#ifndef POPPER_GIT_COMMIT
#define POPPER_GIT_COMMIT "unknown"
#endif

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("popper_git_commit", POPPER_GIT_COMMIT);
  benchmark::AddCustomContext("cpu_model", popper::cpu_model_name());
  benchmark::AddCustomContext("cpu_features", popper::cpu_features_string());
  benchmark::AddCustomContext("simd_path", popper::simd_level());
  benchmark::AddCustomContext("device", "cpu");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
