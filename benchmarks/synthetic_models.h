// Synthetic model files for the benchmarks, built once into a cache and reused across runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "engine/core/result.h"
#include "engine/synth/synth.h"

namespace popper::bench {

// $POPPER_MODEL_CACHE, else <repo>/.cache/models.
std::filesystem::path model_cache_dir();

// The path of the synthetic file for these options in model_cache_dir(), built first when it is
// missing (layers 0: the preset's own count). Error: synth's.
Result<std::string> synthetic_model_file(SynthArch arch, const std::string& preset, int64_t layers, SynthQuant quant);

}  // namespace popper::bench
