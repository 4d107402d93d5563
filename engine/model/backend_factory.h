// Backend selection for the CLI, the server and the benchmarks: `--backend cpu|cuda|auto`.
#pragma once

#include <memory>
#include <string>

#include "engine/core/result.h"
#include "engine/model/backend.h"
#include "engine/model/weights.h"

namespace popper {

enum class BackendKind { kCpu, kCuda, kAuto };

// "cpu" | "cuda" | "auto"; the error names the bad value and the choices.
Result<BackendKind> parse_backend_kind(const std::string& name);
// True when this binary was built with the CUDA backend (POPPER_HAVE_CUDA).
bool cuda_backend_compiled();

// kCpu: CpuBackend(n_threads). kCuda: the CUDA backend, with `weights` (when given) uploaded now;
// errors when CUDA was not compiled in, no device is usable, or the weights do not fit (bytes
// needed vs free). kAuto: CUDA when it is compiled in and a device answers, else the CPU.
Result<std::unique_ptr<Backend>> make_backend(BackendKind kind, int n_threads, const ModelWeights* weights);

}  // namespace popper
