#include "benchmarks/synthetic_models.h"

#include <cstdlib>

namespace popper::bench {

std::filesystem::path model_cache_dir() {
  if (const char* env = std::getenv("POPPER_MODEL_CACHE")) return env;
  return std::filesystem::path(__FILE__).parent_path().parent_path() / ".cache" / "models";
}

Result<std::string> synthetic_model_file(SynthArch arch, const std::string& preset, int64_t layers, SynthQuant quant) {
  const std::string name = str_cat("bench-", preset, "-", synth_arch_name(arch), "-", synth_quant_name(quant),
                                   layers > 0 ? str_cat("-", layers, "l") : std::string(), ".gguf");
  const auto path = model_cache_dir() / name;
  if (!std::filesystem::exists(path)) {
    std::filesystem::create_directories(path.parent_path());
    SynthOptions o;
    o.arch = arch;
    o.preset = preset;
    o.layers = layers;
    o.quant = quant;
    POPPER_RETURN_IF_ERROR(synth_model(o, path.string()));
  }
  return path.string();
}

}  // namespace popper::bench
