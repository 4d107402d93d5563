// The fuzz targets' common shape: one entry function per parser of untrusted bytes, registered
// by name, so the same function runs under libFuzzer (libfuzzer_main.cpp, clang build with
// POPPER_FUZZ=ON) and under GoogleTest (falsifiers/fuzz_regression_test.cpp, the normal build),
// which replays every committed crash input and seed.
//
// An entry function checks properties, not only survival: an accepted input round-trips, an
// error names where it is, a value the parser hands out keeps its documented invariants. A
// broken property calls fuzz_require(false, ...), which aborts under libFuzzer (a crash input
// is saved) and throws PropertyViolation under GoogleTest (the test fails and names the file).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace popper::fuzz {

using Bytes = std::span<const uint8_t>;

struct FuzzTarget {
  const char* name;  // "gguf": binary <name>_fuzz, inputs under falsifiers/fuzz/{seeds,regressions}/<name>/
  void (*one_input)(Bytes data);
  // Writes a seed corpus into `dir` made from the committed fixtures (may be null: the committed
  // seeds are then the whole corpus). Returns the number of files written, -1 on failure.
  int (*extract_seeds)(const std::string& dir);
};

// Every target linked into this binary, sorted by name.
const std::vector<FuzzTarget>& fuzz_targets();
const FuzzTarget* find_fuzz_target(const std::string& name);

struct Registrar {
  explicit Registrar(FuzzTarget t);
};
#define POPPER_FUZZ_TARGET(name, one_input, extract_seeds) \
  static const ::popper::fuzz::Registrar popper_fuzz_registrar_##name({#name, one_input, extract_seeds})

struct PropertyViolation : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// What a broken property does (abort or throw, see above); the default aborts.
using ViolationHandler = void (*)(const std::string& what);
void set_violation_handler(ViolationHandler h);
void fuzz_require(bool cond, const std::string& what);

// The repository root the binary was built from (fixtures are read from it).
std::string source_dir();
// A scratch directory private to this process, created on first use and reused; the caller
// empties what it put there.
const std::string& scratch_dir();
// Writes `bytes` to `dir`/<name>; false (with a message on stderr) when it cannot.
bool write_seed(const std::string& dir, const std::string& name, std::string_view bytes);
// Copies every file under <source_dir>/`from` (recursively) whose name ends in `suffix` into
// `dir`, named by its path with '/' as '_'. Returns the count, -1 when `from` has none.
// <source_dir>/`rel` parsed as JSON; a discarded value (is_discarded()) when unreadable.
nlohmann::json read_json_fixture(const std::string& rel);
int copy_fixture_files(const std::string& from, std::string_view suffix, const std::string& dir);

}  // namespace popper::fuzz
