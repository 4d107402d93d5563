#include "falsifiers/fuzz/fuzz_target.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "engine/core/atomic_file.h"

namespace popper::fuzz {
namespace {

// Function-local so registration from other translation units' static initialisers is safe.
std::vector<FuzzTarget>& registry() {
  static std::vector<FuzzTarget> targets;
  return targets;
}

void abort_on_violation(const std::string& what) {
  std::fprintf(stderr, "fuzz: property violated: %s\n", what.c_str());
  std::abort();
}

ViolationHandler g_handler = abort_on_violation;

}  // namespace

Registrar::Registrar(FuzzTarget t) {
  auto& r = registry();
  r.push_back(t);
  std::sort(r.begin(), r.end(), [](const FuzzTarget& a, const FuzzTarget& b) {
    return std::string_view(a.name) < std::string_view(b.name);
  });
}

const std::vector<FuzzTarget>& fuzz_targets() { return registry(); }

const FuzzTarget* find_fuzz_target(const std::string& name) {
  for (const auto& t : registry())
    if (name == t.name) return &t;
  return nullptr;
}

void set_violation_handler(ViolationHandler h) { g_handler = h; }

void fuzz_require(bool cond, const std::string& what) {
  if (!cond) g_handler(what);
}

std::string source_dir() { return POPPER_SOURCE_DIR; }

const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "popper-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("fuzz: mkdtemp");
      std::abort();  // no scratch space: the target cannot run at all (not an input's fault)
    }
    // Removed at exit so a long campaign's restarts do not fill /tmp.
    static const std::string keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

bool write_seed(const std::string& dir, const std::string& name, std::string_view bytes) {
  Status st = write_file_atomic(dir + "/" + name, bytes);
  if (!st.ok()) std::fprintf(stderr, "fuzz: %s\n", st.message().c_str());
  return st.ok();
}

nlohmann::json read_json_fixture(const std::string& rel) {
  auto text = read_file(source_dir() + "/" + rel);
  if (!text.ok()) {
    std::fprintf(stderr, "fuzz: %s\n", text.message().c_str());
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return nlohmann::json::parse(*text, nullptr, false);
}

int copy_fixture_files(const std::string& from, std::string_view suffix, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(source_dir()) / from;
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (!e.is_regular_file() || !e.path().string().ends_with(suffix)) continue;
    auto text = read_file(e.path().string());
    std::string name = fs::relative(e.path(), root).string();
    std::replace(name.begin(), name.end(), '/', '_');
    if (!text.ok() || !write_seed(dir, name, *text)) return -1;
    ++n;
  }
  if (n == 0)
    std::fprintf(stderr, "fuzz: no *%.*s under %s\n", int(suffix.size()), suffix.data(), root.c_str());
  return n == 0 ? -1 : n;
}

}  // namespace popper::fuzz
