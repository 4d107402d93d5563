#include "harness/run/targets.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "harness/run/kinds.h"
#include "harness/run/outputs.h"
#include "harness/run/process.h"

namespace popper::harness {
namespace fs = std::filesystem;

bool is_executable(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

std::string self_exe_path() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("popper") : p.string();
}

std::string default_build_dir() {
  fs::path exe = self_exe_path();
  // <build>/harness/popper
  if (exe.has_parent_path() && exe.parent_path().filename() == "harness")
    return exe.parent_path().parent_path().string();
  return exe.has_parent_path() ? exe.parent_path().string() : ".";
}

std::string find_repo_root(const std::string& start) {
  auto out = capture_output({"/usr/bin/env", "git", "rev-parse", "--show-toplevel"}, start, 10);
  if (out.ok()) {
    std::string root = trim(*out);
    if (!root.empty()) return root;
  }
  std::error_code ec;
  return fs::absolute(start, ec).lexically_normal().string();
}

TargetLocation locate_target(const Binding& b, const std::string& build_dir, const std::string& repo_root) {
  if (!b.kind) return {false, "", "the binding has no valid kind"};
  return kind_strategy(*b.kind).locate(b, build_dir, repo_root);
}

TargetLocation locate_built_target(const std::string& target, const std::string& build_dir,
                                   const char* subdir) {
  TargetLocation loc;
  fs::path p = target.find('/') != std::string::npos ? fs::path(build_dir) / target
                                                     : fs::path(build_dir) / subdir / target;
  loc.path = p.lexically_normal().string();
  loc.found = is_executable(p);
  if (!loc.found) loc.reason = "target " + target + " not built (no " + loc.path + ")";
  return loc;
}

Result<std::vector<std::string>> list_matching_tests(BindingKind kind, const std::string& exe,
                                                     const std::string& filter) {
  const KindStrategy& k = kind_strategy(kind);
  if (!k.lists_tests()) return make_error("kind ", binding_kind_name(kind), " has no test list");
  return k.list(exe, filter);
}

GpuInfo detect_gpu() {
  GpuInfo g;
  const char* no_gpu = std::getenv("POPPER_NO_GPU");
  if (no_gpu && std::string(no_gpu) == "1") {
    g.how = "POPPER_NO_GPU=1 is set";
    return g;
  }
  auto out = capture_output(
      {"/usr/bin/env", "nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"}, "", 20);
  if (out.ok() && !trim(*out).empty()) {
    std::string first = trim(*out);
    first = first.substr(0, first.find('\n'));
    auto comma = first.rfind(',');
    g.present = true;
    g.name = trim(first.substr(0, comma));
    g.driver = comma == std::string::npos ? "" : trim(first.substr(comma + 1));
    g.how = "nvidia-smi";
    return g;
  }
  std::error_code ec;
  if (fs::exists("/dev/nvidia0", ec)) {
    g.present = true;
    g.name = "NVIDIA GPU (nvidia-smi unavailable)";
    g.how = "/dev/nvidia0";
    return g;
  }
  g.how = "no nvidia-smi answer and no /dev/nvidia0";
  return g;
}

}  // namespace popper::harness
