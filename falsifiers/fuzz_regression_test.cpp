// Replays every committed fuzz input through its target's entry function, in the normal (GCC)
// build, so CI checks the fuzz targets' properties without clang: the crash inputs found by
// fuzzing (falsifiers/fuzz/regressions/<target>/, each a bug fixed in the parser) and the
// small committed seeds (falsifiers/fuzz/seeds/<target>/). The targets and what they check are
// in falsifiers/fuzz/*_fuzz.cpp; running them is scripts/fuzz.sh (docs/fuzzing.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "engine/core/atomic_file.h"
#include "falsifiers/fuzz/fuzz_archive.h"
#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {
namespace {
namespace fs = std::filesystem;

[[noreturn]] void throw_violation(const std::string& what) { throw PropertyViolation(what); }

// The committed inputs of `target` under falsifiers/fuzz/<kind>/<target>/, sorted.
std::vector<std::string> committed_inputs(const std::string& kind, const std::string& target) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(source_dir() + "/falsifiers/fuzz/" + kind + "/" + target, ec))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs every input; returns one line per input that broke a property or threw.
std::vector<std::string> replay(const FuzzTarget& t, const std::vector<std::string>& inputs) {
  set_violation_handler(throw_violation);
  std::vector<std::string> failures;
  for (const auto& path : inputs) {
    auto bytes = read_file(path);
    if (!bytes.ok()) {
      failures.push_back(bytes.message());
      continue;
    }
    try {
      t.one_input(Bytes(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
    } catch (const PropertyViolation& v) {
      failures.push_back(path + ": property violated: " + v.what());
    } catch (const std::exception& e) {
      failures.push_back(path + ": exception escaped the parser: " + e.what());
    }
  }
  return failures;
}

class FuzzRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegression, EveryCommittedInputKeepsTheTargetsProperties) {
  RecordProperty("falsification_id", "fuzz regressions: " + GetParam());
  const FuzzTarget* t = find_fuzz_target(GetParam());
  ASSERT_NE(t, nullptr);
  std::vector<std::string> inputs = committed_inputs("regressions", GetParam());
  const size_t n_regressions = inputs.size();
  for (auto& s : committed_inputs("seeds", GetParam())) inputs.push_back(std::move(s));
  RecordProperty("regression_inputs", std::to_string(n_regressions));
  RecordProperty("inputs", std::to_string(inputs.size()));
  // Seeds from the fixtures too, when the target makes them: they are what fuzzing starts from.
  if (t->extract_seeds) {
    const std::string dir = scratch_dir() + "/seeds-" + GetParam();
    fs::create_directories(dir);
    ASSERT_GT(t->extract_seeds(dir), 0) << "the target's fixtures are committed";
    for (const auto& e : fs::directory_iterator(dir)) inputs.push_back(e.path().string());
  }
  ASSERT_FALSE(inputs.empty()) << "every target has at least one committed seed or fixture";
  for (const auto& f : replay(*t, inputs)) ADD_FAILURE() << f;
}

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const auto& t : fuzz_targets()) names.push_back(t.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzRegression, ::testing::ValuesIn(target_names()),
                         [](const auto& info) { return info.param; });

// Negative control: a target whose property breaks on one input must fail the replay, naming
// that input, and an exception out of a parser must too; otherwise the replay checks nothing.
void breaks_on_x(Bytes data) {
  fuzz_require(data.empty() || data[0] != 'x', "the first byte is not x");
  if (!data.empty() && data[0] == 'e') throw std::runtime_error("escaped");
}

TEST(FuzzRegressionControl, ABrokenPropertyAndAnEscapedExceptionFailTheReplay) {
  const FuzzTarget t{"control", breaks_on_x, nullptr};
  const std::string dir = scratch_dir() + "/control";
  fs::create_directories(dir);
  ASSERT_TRUE(write_seed(dir, "ok", "a") && write_seed(dir, "bad", "x") && write_seed(dir, "throws", "e"));
  const auto failures = replay(t, {dir + "/ok", dir + "/bad", dir + "/throws"});
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_NE(failures[0].find("/bad: property violated: the first byte is not x"), std::string::npos)
      << failures[0];
  EXPECT_NE(failures[1].find("/throws: exception escaped the parser: escaped"), std::string::npos)
      << failures[1];
}

// The archive format the directory targets read: what pack writes, parse reads back, and no
// path can leave the tree.
TEST(FuzzArchive, PackThenParseGivesTheSameFilesAndUnsafePathsAreDropped) {
  const FileTree files{{"MANIFEST", "abc  d/e.json\n"}, {"d/e.json", "{}\n"}, {"last", "no newline"}};
  EXPECT_EQ(parse_archive(pack_archive(files)), files);
  const FileTree bad = parse_archive("=== /etc/passwd\nx\n=== a/../../b\ny\n=== ./c\nz\n=== ok\nw");
  EXPECT_EQ(bad, (FileTree{{"ok", "w"}}));
}

}  // namespace
}  // namespace popper::fuzz
