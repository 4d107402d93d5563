#include "harness/run/targets.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "harness/run/process.h"

namespace popper::harness {
namespace fs = std::filesystem;

namespace {

bool is_executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

}  // namespace

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
  TargetLocation loc;
  if (b.kind == "command") {
    if (b.command.empty()) {
      loc.reason = "kind: command has an empty command";
      return loc;
    }
    const std::string& arg0 = b.command[0];
    fs::path p = arg0 == "popper"               ? fs::path(self_exe_path())
                 : fs::path(arg0).is_absolute() ? fs::path(arg0)
                                                : fs::path(repo_root) / arg0;
    loc.path = p.string();
    loc.found = is_executable(p);
    if (!loc.found) loc.reason = "command " + arg0 + " not found or not executable (" + loc.path + ")";
    return loc;
  }
  fs::path p;
  if (b.target.find('/') != std::string::npos)
    p = fs::path(build_dir) / b.target;
  else
    p = fs::path(build_dir) / (b.kind == "benchmark" ? "benchmarks" : "falsifiers") / b.target;
  loc.path = p.lexically_normal().string();
  loc.found = is_executable(p);
  if (!loc.found) loc.reason = "target " + b.target + " not built (no " + loc.path + ")";
  return loc;
}

Result<std::vector<std::string>> list_matching_tests(const std::string& kind, const std::string& exe,
                                                     const std::string& filter) {
  std::vector<std::string> names;
  if (kind == "gtest") {
    std::vector<std::string> argv{exe, "--gtest_list_tests"};
    if (!filter.empty()) argv.push_back("--gtest_filter=" + filter);
    auto out = capture_output(argv, "", 60);
    if (!out.ok()) return make_error("listing tests of ", exe, " failed: ", out.message());
    // "Suite.\n  Name\n  Name2  # GetParam() = ..." — suite lines end with '.'.
    std::istringstream in(*out);
    std::string line, suite;
    while (std::getline(in, line)) {
      auto hash = line.find('#');
      std::string body = hash == std::string::npos ? line : line.substr(0, hash);
      if (trim(body).empty()) continue;
      if (body[0] != ' ') {
        suite = trim(body);
      } else if (!suite.empty()) {
        names.push_back(suite + trim(body));
      }
    }
    return names;
  }
  if (kind == "benchmark") {
    std::vector<std::string> argv{exe, "--benchmark_list_tests=true"};
    if (!filter.empty()) argv.push_back("--benchmark_filter=" + filter);
    auto out = capture_output(argv, "", 60);
    if (!out.ok()) return make_error("listing benchmarks of ", exe, " failed: ", out.message());
    std::istringstream in(*out);
    std::string line;
    while (std::getline(in, line))
      if (!trim(line).empty()) names.push_back(trim(line));
    return names;
  }
  return make_error("kind ", kind, " has no test list");
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
