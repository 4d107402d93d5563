// Where the checks live and what this machine can run: the build directory, the falsifier and
// benchmark executables in it, the tests each one lists, and whether a CUDA GPU is present.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/binding.h"

namespace popper::harness {

// The running popper executable (/proc/self/exe).
std::string self_exe_path();
// The build directory popper itself lives in: <build>/harness/popper -> <build>.
std::string default_build_dir();
// The repository root: `git rev-parse --show-toplevel` from `start`, else `start` itself.
std::string find_repo_root(const std::string& start = ".");

// The executable a binding runs, or the path where it was looked for and not found.
struct TargetLocation {
  bool found = false;
  std::string path;    // the executable, or the path that was looked for
  std::string reason;  // when not found: "target serve_dispatch_test not built (no <path>)"
};

// gtest targets live in <build>/falsifiers/<target>, benchmarks in <build>/benchmarks/<target>;
// a target containing '/' is a path relative to the build directory. For kind: command,
// argv[0] "popper" is this binary and other relative paths are taken from the repository root.
// (Each kind's strategy decides, run/kinds.h; this asks it.)
TargetLocation locate_target(const Binding& b, const std::string& build_dir, const std::string& repo_root);

// `target` under <build_dir>/<subdir>, or relative to <build_dir> when it contains '/'.
TargetLocation locate_built_target(const std::string& target, const std::string& build_dir,
                                   const char* subdir);
// A regular file this process may execute.
bool is_executable(const std::string& path);

// Names of the tests (Suite.Name) or benchmarks the executable would run for `filter`
// (asks the binary itself: --gtest_list_tests / --benchmark_list_tests). An error for a kind
// without such a list.
Result<std::vector<std::string>> list_matching_tests(BindingKind kind, const std::string& exe,
                                                     const std::string& filter);

struct GpuInfo {
  bool present = false;
  std::string name;    // "NVIDIA H100 80GB HBM3"
  std::string driver;  // "550.54.15"
  std::string how;     // how it was (not) detected
};
// nvidia-smi when it answers, else /dev/nvidia0. POPPER_NO_GPU=1 forces "absent" (for tests and
// for checking what a CPU-only machine would report).
GpuInfo detect_gpu();

}  // namespace popper::harness
