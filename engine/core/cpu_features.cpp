#include "engine/core/cpu_features.h"

#include <cstdlib>
#include <fstream>
#include <string_view>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace popper {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // CPUID.1:ECX bit 29; read directly because clang (14) does not know "f16c" as a
    // __builtin_cpu_supports feature, and the fuzz build compiles the engine with clang.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
    return f;
  }();
  return features;
}

std::string cpu_features_string() {
  const auto& f = cpu_features();
  std::string out;
  auto add = [&](bool on, std::string_view name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.avx2, "AVX2");
  add(f.fma, "FMA");
  add(f.f16c, "F16C");
  add(f.avx512f, "AVX512F");
  add(f.avx512bw, "AVX512BW");
  add(f.avx512vnni, "AVX512VNNI");
  return out.empty() ? "none" : out;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

std::string simd_level() {
  const auto& f = cpu_features();
  std::string best = f.has_avx512_vnni() && f.has_avx2_fma() ? "avx512"
                     : f.has_avx2_fma()                      ? "avx2"
                                                             : "scalar";
  const char* cap = std::getenv("POPPER_SIMD");
  if (cap == nullptr) return best;
  std::string_view want(cap);
  auto rank = [](std::string_view level) { return level == "avx512" ? 2 : level == "avx2" ? 1 : 0; };
  return rank(want) < rank(best) ? std::string(want == "avx2" ? "avx2" : "scalar") : best;
}

}  // namespace popper
