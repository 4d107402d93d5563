// Falsifiers for contract loading and `popper validate`: a corpus of malformed contracts, each
// with the exact messages it must produce (falsifiers/fixtures/harness/malformed/*.expected),
// and the rules behind them (semver, dates, ID stems).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "falsifiers/harness_test_util.h"
#include "harness/contract/contract.h"
#include "harness/contract/contract_set.h"
#include "harness/contract/validate.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
    s.replace(p, from.size(), to);
  return s;
}

// Validates the files together (bindings checked against this build) and renders every
// diagnostic with the corpus directory and build directory replaced by placeholders.
std::string validate_render(const std::vector<std::string>& files) {
  ContractSet set = load_contract_set(files);
  std::vector<Diagnostic> diags = set.diagnostics();
  ValidateOptions opts;
  opts.build_dir = testing::build_dir();
  opts.repo_root = POPPER_SOURCE_DIR;
  validate_contracts(set.contracts(), opts, diags);
  std::string out;
  for (const auto& d : diags) out += d.format() + "\n";
  out = replace_all(out, testing::fixtures_dir() + "/malformed", "{DIR}");
  return replace_all(out, testing::build_dir(), "{BUILD}");
}

TEST(ContractValidation, EveryMalformedContractGivesExactlyItsExpectedMessages) {
  RecordProperty("falsification_id", "harness: malformed-contract corpus");
  const std::string dir = testing::fixtures_dir() + "/malformed";
  std::vector<std::string> cases;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") cases.push_back(e.path().string());
  cases.push_back(dir + "/across");  // two contracts validated together
  std::sort(cases.begin(), cases.end());
  ASSERT_GE(cases.size(), 10u);
  const bool regen = std::getenv("POPPER_REGEN_EXPECTED") != nullptr;
  for (const auto& c : cases) {
    std::vector<std::string> files;
    if (fs::is_directory(c)) {
      for (const auto& e : fs::directory_iterator(c)) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(c);
    }
    std::string got = validate_render(files);
    std::string expected_path = fs::path(c).replace_extension(".expected").string();
    if (fs::is_directory(c)) expected_path = c + ".expected";
    if (regen) {
      ASSERT_TRUE(write_file_atomic(expected_path, got).ok());
      continue;
    }
    auto want = read_file(expected_path);
    ASSERT_TRUE(want.ok()) << want.message();
    EXPECT_EQ(got, *want) << "case " << c;
    EXPECT_NE(got, "") << "case " << c << " produced no diagnostics";
  }
}

TEST(ContractValidation, ShippedContractsHaveNoErrors) {
  auto files = expand_contract_paths({}, POPPER_SOURCE_DIR);
  ASSERT_TRUE(files.ok()) << files.message();
  ContractSet set = load_contract_set(*files);
  std::vector<Diagnostic> diags = set.diagnostics();
  ValidateOptions opts;
  opts.build_dir = testing::build_dir();
  opts.repo_root = POPPER_SOURCE_DIR;
  opts.check_bindings = false;  // other areas' targets may not be built in this build
  validate_contracts(set.contracts(), opts, diags);
  for (const auto& d : diags) EXPECT_NE(d.severity, Severity::kError) << d.format();
}

TEST(ContractValidation, UnknownFieldsAreKeptInTheItem) {
  auto l = load_contract(testing::fixtures_dir() + "/malformed/unknown-fields-v1.yaml");
  ASSERT_TRUE(l.contract);
  ASSERT_EQ(l.contract->items.size(), 1u);
  EXPECT_EQ(l.contract->items[0].extra.value("priority", ""), "high");
}

TEST(ContractValidation, ClaimsDigestIgnoresHistoryButNotItems) {
  const std::string base = read_file(testing::fixtures_dir() + "/malformed/across/first-v1.yaml").value();
  auto a = parse_contract("a.yaml", base);
  auto b = parse_contract("b.yaml", base + "  - version: 1.0.1\n    date: 2026-01-03\n    summary: more\n");
  auto c = parse_contract("c.yaml", replace_all(base, "Fixture.Passes", "Fixture.AlsoPasses"));
  ASSERT_TRUE(a.contract && b.contract && c.contract);
  EXPECT_EQ(a.contract->claims_sha256, b.contract->claims_sha256);
  EXPECT_NE(a.contract->claims_sha256, c.contract->claims_sha256);
  EXPECT_NE(a.contract->sha256, b.contract->sha256);
}

TEST(SemVer, AcceptsOnlyMajorMinorPatch) {
  EXPECT_EQ(parse_semver("1.2.3")->str(), "1.2.3");
  EXPECT_EQ(parse_semver("10.0.12")->patch, 12);
  for (const char* bad : {"1.0", "1.0.0.0", "01.0.0", "1.0.0-rc1", "v1.0.0", "", "1..0", "a.b.c"})
    EXPECT_FALSE(parse_semver(bad)) << bad;
  EXPECT_LT(*parse_semver("1.9.0"), *parse_semver("1.10.0"));
}

TEST(Dates, RejectImpossibleCalendarDays) {
  EXPECT_TRUE(parse_date("2024-02-29"));
  EXPECT_FALSE(parse_date("2023-02-29"));
  EXPECT_FALSE(parse_date("2026-13-01"));
  EXPECT_FALSE(parse_date("2026-1-01"));
  EXPECT_EQ(*parse_date("1970-01-01"), 0);
  EXPECT_EQ(*parse_date("2026-01-02") - *parse_date("2025-12-31"), 2);
}

TEST(ContractIds, StemDropsTheMajorSuffixAndUppercases) {
  EXPECT_EQ(contract_id_stem("qwen3-moe-serve-dispatch-v1"), "QWEN3_MOE_SERVE_DISPATCH");
  EXPECT_EQ(contract_id_stem("qwen3-moe-kvcache-v12"), "QWEN3_MOE_KVCACHE");
  EXPECT_EQ(contract_id_stem("no-version"), "NO_VERSION");
}

}  // namespace
}  // namespace popper::harness
