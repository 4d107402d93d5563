// What the CPU we run on can do, read once from CPUID. Kernels pick their path from this at
// run time, so one binary runs on any x86-64.
#pragma once

#include <string>

namespace popper {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;

  // The AVX2+FMA+F16C kernels need all three.
  bool has_avx2_fma() const { return avx2 && fma && f16c; }
  bool has_avx512_vnni() const { return avx512f && avx512bw && avx512vl && avx512vnni; }
};

const CpuFeatures& cpu_features();

// "AVX2 FMA F16C AVX512VNNI" — for evidence and `popper inspect`.
std::string cpu_features_string();

// The CPU's marketing name from /proc/cpuinfo ("unknown" when unreadable).
std::string cpu_model_name();

// Environment override for tests and benchmarks: POPPER_SIMD=scalar|avx2|avx512 caps the
// kernel path below what the CPU offers. Returns "scalar", "avx2" or "avx512".
std::string simd_level();

}  // namespace popper
