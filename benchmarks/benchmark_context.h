// Startup hooks for the shared benchmark main() (benchmark_context.cpp). A benchmark executable
// registers a hook at static initialisation; main() runs every hook after Google Benchmark has
// parsed argv and before any benchmark runs, so a hook can read its environment, make what the
// benchmarks share (e.g. the backend), and record it with benchmark::AddCustomContext. A hook
// that returns an error stops the run: main prints "<executable>: <message>" and exits 2.
#pragma once

#include <functional>

#include "engine/core/result.h"

namespace popper::bench {

using StartupHook = std::function<Status()>;

// Returns true, so that a namespace-scope `const bool` can register the hook.
bool add_startup_hook(StartupHook hook);

}  // namespace popper::bench
