// Helpers shared by the harness falsifiers: where the build and the fixtures are, temp dirs.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace popper::harness::testing {

// <build>/falsifiers/<this test> -> <build>
inline std::string build_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path().string();
}

inline std::string fixtures_dir() { return std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/harness"; }

// A fresh directory under /tmp, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/popper-harness-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace popper::harness::testing
