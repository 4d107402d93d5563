#include "harness/evidence/provenance.h"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/core/cpu_features.h"
#include "harness/run/process.h"

// Baked in at configure time (harness/CMakeLists.txt).
#ifndef POPPER_VERSION
#define POPPER_VERSION "dev"
#endif
#ifndef POPPER_COMPILER
#define POPPER_COMPILER "unknown"
#endif
#ifndef POPPER_CXX_FLAGS
#define POPPER_CXX_FLAGS ""
#endif
#ifndef POPPER_BUILD_TYPE
#define POPPER_BUILD_TYPE "unknown"
#endif
#ifndef POPPER_BUILD_OPTIONS
#define POPPER_BUILD_OPTIONS ""
#endif

namespace popper::harness {
namespace {

uint64_t mem_total_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace

std::string popper_version() { return POPPER_VERSION; }

GitState read_git_state(const std::string& repo_root, const std::string& ignored_prefix) {
  GitState g;
  auto head = capture_output({"/usr/bin/env", "git", "rev-parse", "HEAD"}, repo_root, 20);
  if (!head.ok()) return g;
  g.available = true;
  g.commit = head->substr(0, head->find_first_of(" \r\n"));
  g.short_commit = g.commit.substr(0, 12);
  auto status = capture_output({"/usr/bin/env", "git", "status", "--porcelain", "--untracked-files=all"},
                               repo_root, 60);
  if (!status.ok()) {
    g.dirty = true;
    g.dirty_paths.push_back("(git status failed: " + status.message() + ")");
    return g;
  }
  std::istringstream in(*status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 4) continue;
    std::string path = line.substr(3);
    if (!ignored_prefix.empty() && path.rfind(ignored_prefix, 0) == 0) continue;
    g.dirty_paths.push_back(line);
  }
  g.dirty = !g.dirty_paths.empty();
  return g;
}

nlohmann::json collect_provenance(const GitState& git, const GpuInfo& gpu, const std::string& build_dir) {
  using nlohmann::json;
  json p;
  p["popper_version"] = POPPER_VERSION;
  json g;
  g["available"] = git.available;
  g["commit"] = git.commit;
  g["short_commit"] = git.short_commit;
  g["dirty"] = git.dirty;
  json dirty = json::array();
  for (size_t i = 0; i < git.dirty_paths.size() && i < 50; ++i) dirty.push_back(git.dirty_paths[i]);
  g["dirty_paths"] = dirty;
  g["dirty_paths_total"] = git.dirty_paths.size();
  p["git"] = g;
  p["build"] = {{"compiler", POPPER_COMPILER},
                {"cxx_flags", POPPER_CXX_FLAGS},
                {"build_type", POPPER_BUILD_TYPE},
                {"options", POPPER_BUILD_OPTIONS},
                {"build_dir", build_dir}};
  struct utsname u {};
  uname(&u);
  p["host"] = {{"hostname", u.nodename},
               {"os", std::string(u.sysname) + " " + u.release},
               {"machine", u.machine},
               {"cpu_model", cpu_model_name()},
               {"cpu_features", cpu_features_string()},
               {"simd_path", simd_level()},
               {"cores_usable", usable_cores()},
               {"cores_online", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))},
               {"memory_bytes", mem_total_bytes()}};
  if (gpu.present)
    p["gpu"] = {{"name", gpu.name}, {"driver", gpu.driver}, {"detected_by", gpu.how}};
  else
    p["gpu"] = nullptr;
  return p;
}

}  // namespace popper::harness
