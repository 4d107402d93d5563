// Shared by the model falsifiers: tiny synthetic models built once per process into a temp
// directory (synth_model is deterministic, so every run tests the same bytes), and small helpers.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "engine/convert/quantize.h"
#include "engine/model/cpu_backend.h"
#include "engine/model/generate.h"
#include "engine/model/model.h"
#include "engine/synth/synth.h"

namespace popper::testing {

struct TinyModelSpec {
  SynthArch arch;
  SynthQuant quant;
  uint64_t seed = 0;
  std::string name() const {
    return std::string(synth_arch_name(arch)) + "_" + synth_quant_name(quant) + "_s" + std::to_string(seed);
  }
};

// gtest prints parameters with this (ADL) instead of their bytes.
inline void PrintTo(const TinyModelSpec& spec, std::ostream* os) { *os << spec.name(); }

inline std::filesystem::path test_temp_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("popper-model-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Path of the tiny model for `spec`, built on first use.
inline std::string tiny_model_path(const TinyModelSpec& spec) {
  const std::string path = (test_temp_dir() / (spec.name() + ".gguf")).string();
  if (!std::filesystem::exists(path)) {
    SynthOptions o;
    o.arch = spec.arch;
    o.preset = "tiny";
    o.quant = spec.quant;
    o.seed = spec.seed;
    Status s = synth_model(o, path);
    if (!s.ok()) ADD_FAILURE() << "synth_model " << spec.name() << ": " << s.message();
  }
  return path;
}

// Path of `popper quantize` run on the tiny model `f32` (an F32 spec) with file type `ftype`,
// built on first use (one thread: ctest runs two test processes on two cores).
inline std::string quantized_model_path(const TinyModelSpec& f32, QuantFtype ftype) {
  const std::string path =
      (test_temp_dir() / (f32.name() + ".quantized." + quant_ftype_name(ftype) + ".gguf")).string();
  if (!std::filesystem::exists(path)) {
    auto r = quantize_model(tiny_model_path(f32), path, QuantizeOptions{ftype, 1});
    if (!r.ok())
      ADD_FAILURE() << "quantize " << f32.name() << " " << quant_ftype_name(ftype) << ": " << r.message();
  }
  return path;
}

// The loaded tiny model for `spec`, loaded once per process.
inline const Model& tiny_model(const TinyModelSpec& spec) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& slot = cache[spec.name()];
  if (!slot) {
    auto m = Model::load(tiny_model_path(spec));
    if (!m.ok()) {
      ADD_FAILURE() << "load " << spec.name() << ": " << m.message();
      std::abort();
    }
    slot = std::move(m.value());
  }
  return *slot;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// Deterministic prompt of n ids in [0, n_vocab), varied by `salt`.
inline std::vector<int32_t> test_prompt(int64_t n, int64_t n_vocab, uint64_t salt) {
  Rng rng(0x5eed + salt);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = int32_t(rng.below(uint64_t(n_vocab)));
  return p;
}

// Cleans the temp dir at exit.
class TempDirCleaner : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(test_temp_dir(), ec);
  }
};

}  // namespace popper::testing

namespace popper::testing {
inline ::testing::Environment* const kTempDirCleaner =
    ::testing::AddGlobalTestEnvironment(new TempDirCleaner);
}  // namespace popper::testing
