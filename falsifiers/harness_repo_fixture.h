// A throwaway git repository with contracts over the fixture falsifiers, and a way to run this
// build's `popper` in it. Shared by the report, sign-off and shard falsifiers.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/atomic_file.h"
#include "falsifiers/harness_test_util.h"
#include "harness/run/process.h"

namespace popper::harness::testing {

struct Cmd {
  int code = -1;
  std::string out, err;
};

class TempRepo {
 public:
  // Writes contracts/<name>.yaml for each (name, text) and commits them.
  void init(const std::vector<std::pair<std::string, std::string>>& contracts) {
    std::filesystem::create_directories(dir_ / "contracts");
    ASSERT_TRUE(write_file_atomic(dir_ / "README.md", "throwaway repository of a harness falsifier\n").ok());
    for (const auto& [name, text] : contracts)
      ASSERT_TRUE(write_file_atomic(dir_ / ("contracts/" + name + ".yaml"), text).ok());
    git({"init", "-q"});
    commit_all("seed");
  }
  void git(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/env", "git", "-c", "user.name=t", "-c", "user.email=t@t"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = capture_output(argv, dir_.path());
    ASSERT_TRUE(r.ok()) << r.message();
  }
  void commit_all(const std::string& msg) {
    git({"add", "."});
    git({"commit", "-q", "-m", msg});
  }
  // Runs build/harness/popper in the repository; models and logs stay outside it.
  Cmd popper(const std::vector<std::string>& args) {
    SpawnOptions o;
    o.argv = {build_dir() + "/harness/popper"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.cwd = dir_.path();
    o.stdout_path = logs_ / "out";
    o.stderr_path = logs_ / "err";
    o.timeout_s = 120;
    o.env_extra = {{"POPPER_MODEL_CACHE", logs_ / "models"}, {"NO_COLOR", "1"}};
    ProcessResult r = run_process(o);
    Cmd c;
    c.code = r.exited_ok() ? 0 : r.exit_code;
    c.out = read_file(logs_ / "out").value();
    c.err = read_file(logs_ / "err").value();
    return c;
  }
  std::string operator/(const std::string& rel) const { return dir_ / rel; }
  const std::string& path() const { return dir_.path(); }
  // A directory outside the repository (so what is written there never makes the tree dirty).
  std::string outside(const std::string& rel) const { return out_ / rel; }

 private:
  TempDir dir_, logs_, out_;
};

inline std::string build_flag() { return "--build-dir=" + build_dir(); }

}  // namespace popper::harness::testing
