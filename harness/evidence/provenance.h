// Where a verdict came from: commit and dirty flag, compiler and flags, CPU, memory, GPU.
// Collected once per `popper run` and written into every evidence file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/run/clock.h"
#include "harness/run/targets.h"

namespace popper::harness {

struct GitState {
  bool available = false;
  std::string commit;        // full hash
  std::string short_commit;  // 12 hex digits
  bool dirty = false;
  std::vector<std::string> dirty_paths;  // `git status --porcelain` lines, outside evidence/
};

// `git rev-parse HEAD` and `git status --porcelain` in `repo_root`. Changes under
// `ignored_prefix` (the evidence directory, relative to the root) do not make the tree dirty:
// evidence files are outputs, not inputs to a verdict.
GitState read_git_state(const std::string& repo_root, const std::string& ignored_prefix = "evidence/");

// The provenance block of an evidence file (see evidence/README.md).
nlohmann::json collect_provenance(const GitState& git, const GpuInfo& gpu, const std::string& build_dir);

std::string popper_version();

}  // namespace popper::harness
