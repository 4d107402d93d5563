// Backend selection for the CLI, the server and the benchmarks: `--backend cpu|cuda|auto`.
//
// The CPU backend is always here. Other backends register a factory at static-initialisation time
// from the library that implements them (engine/cuda registers "cuda" when a binary links it), so
// this layer is compiled once, without knowing whether CUDA exists, and one engine/model library
// serves builds with and without nvcc.
#pragma once

#include <memory>
#include <string>

#include "engine/core/result.h"
#include "engine/model/backend.h"
#include "engine/model/model.h"

namespace popper {

enum class BackendKind { kCpu, kCuda, kAuto };

// "cpu" | "cuda" | "auto"; the error names the bad value and the choices.
Result<BackendKind> parse_backend_kind(const std::string& name);
// True when this binary has the CUDA backend (it links engine/cuda, built with nvcc).
bool cuda_backend_compiled();

// kCpu: CpuBackend(n_threads). kCuda: the CUDA backend; errors when this binary has none or no
// device is usable. With a model, its weights are prepared on the new backend now
// (Model::weights_on), so a device backend uploads them once, here, and weights that do not fit
// are an error now (bytes needed vs free). kAuto: CUDA when this binary has it, a device answers
// and the model's weights fit; else the CPU.
Result<std::unique_ptr<Backend>> make_backend(BackendKind kind, int n_threads, const Model* model = nullptr);

// A factory for a registered backend. Error when its device is not usable (the runtime's reason).
using BackendFactory = Result<std::unique_ptr<Backend>> (*)(int n_threads);
// Registers the factory for `kind` (kCuda: the only kind registered so far). Returns true, so a
// namespace-scope `const bool` in the backend's library can call it at static initialisation.
bool register_backend(BackendKind kind, BackendFactory factory);

}  // namespace popper
