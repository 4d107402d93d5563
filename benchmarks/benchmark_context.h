// Startup hooks for the shared benchmark main() (benchmark_context.cpp). A benchmark executable
// registers a hook at static initialisation; main() runs every hook after Google Benchmark has
// parsed argv and before any benchmark runs, so a hook can read its environment, make what the
// benchmarks share (e.g. the backend), and record it with benchmark::AddCustomContext. A hook
// that returns an error stops the run: main prints "<executable>: <message>" and exits 2.
#pragma once

#include <functional>
#include <string>

#include "engine/core/result.h"

namespace popper::bench {

using StartupHook = std::function<Status()>;

// Returns true, so that a namespace-scope `const bool` can register the hook.
bool add_startup_hook(StartupHook hook);

// What the benchmarks run on, for the JSON context's "device" entry (default "cpu"). A hook that
// makes a GPU backend sets it, e.g. "cuda: NVIDIA H100 80GB HBM3".
void set_device(std::string device);

}  // namespace popper::bench
