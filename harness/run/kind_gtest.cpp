// kind: gtest — a GoogleTest executable under <build>/falsifiers, run with a --gtest_filter.
// Every matched test passed: survived; a failure: falsified with the first failing assertion; a
// GTEST_SKIP: inconclusive with its reason; zero tests matched: error.
#include <set>
#include <sstream>

#include "harness/run/kinds.h"

namespace popper::harness {
namespace {
using nlohmann::json;

// First lines of a failure message, trimmed and joined with " | ": enough to read in a terminal;
// the whole message is in the evidence.
std::string first_lines(const std::string& s, int n) {
  std::string out, line;
  int lines = 0;
  std::istringstream in(s);
  while (lines < n && std::getline(in, line)) {
    size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos) continue;
    out += (out.empty() ? "" : " | ") + line.substr(a, line.find_last_not_of(" \t\r") - a + 1);
    ++lines;
  }
  return out;
}

class GtestKind final : public KindStrategy {
 public:
  const char* unit() const override { return "test"; }

  TargetLocation locate(const Binding& b, const std::string& build_dir, const std::string&) const override {
    return locate_built_target(b.target, build_dir, "falsifiers");
  }

  Result<std::vector<std::string>> list(const std::string& exe, const std::string& filter) const override {
    std::vector<std::string> argv{exe, "--gtest_list_tests"};
    if (!filter.empty()) argv.push_back("--gtest_filter=" + filter);
    auto out = capture_output(argv, "", 60);
    if (!out.ok()) return make_error("listing tests of ", exe, " failed: ", out.message());
    // "Suite.\n  Name\n  Name2  # GetParam() = ..." — suite lines end with '.'.
    std::vector<std::string> names;
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

  std::vector<std::string> argv(const Binding& b, const std::string& exe, const std::string& out_json,
                                bool fail_fast, std::map<std::string, std::string>&) const override {
    std::vector<std::string> a{exe, "--gtest_output=json:" + out_json, "--gtest_color=no"};
    if (!b.filter.empty()) a.push_back("--gtest_filter=" + b.filter);
    if (fail_fast) a.push_back("--gtest_fail_fast");
    return a;
  }

  Result<ParsedOutput> parse(const std::string& text, const ChildRun& run,
                             const std::string&) const override {
    // GoogleTest 1.12 leaves skip reasons out of the JSON; they are in the log.
    return parse_gtest_output(text, file_tail(run.stdout_path, 1 << 20));
  }

  void interpret(const ParsedOutput& p, const ChildRun& run, Outcome& out, json& detail) const override {
    json tests = json::array();
    int ran = 0, passed = 0, failed = 0, skipped = 0;
    std::set<std::string> skip_reasons;
    std::string first_failure;
    for (const auto& t : p.tests) {
      tests.push_back({{"name", t.name},
                       {"status", t.status},
                       {"time_s", t.time_s},
                       {"failures", t.failures},
                       {"skip_reason", t.skip_reason},
                       {"properties", t.properties}});
      if (t.status == "not_run") continue;
      ++ran;
      if (t.status == "passed") ++passed;
      if (t.status == "skipped") {
        ++skipped;
        skip_reasons.insert(t.skip_reason);
      }
      if (t.status == "failed") {
        ++failed;
        if (first_failure.empty())
          first_failure = t.name + ": " + first_lines(t.failures.empty() ? "" : t.failures[0], 8);
      }
    }
    detail["tests"] = tests;
    detail["counts"] = {{"ran", ran}, {"passed", passed}, {"failed", failed}, {"skipped", skipped}};
    const Binding& b = run.binding;
    if (ran == 0) {
      out.add(Verdict::kError, "filter '" + b.filter + "' matched no tests in " + b.target);
      return;
    }
    if (failed > 0) {
      out.add(Verdict::kFalsified,
              std::to_string(failed) + " of " + std::to_string(ran) + " tests failed: " + first_failure);
    } else if (run.process.exit_code != 0) {
      out.add(Verdict::kError,
              "exit code " + std::to_string(run.process.exit_code) + " although no test failed");
    }
    if (skipped > 0) {
      std::string why;
      for (const auto& r : skip_reasons) why += (why.empty() ? "" : "; ") + r;
      out.add(Verdict::kInconclusive,
              (skipped == ran ? std::string("skipped: ")
                              : std::to_string(skipped) + " of " + std::to_string(ran) + " tests skipped: ") +
                  why);
    }
    if (out.verdict == Verdict::kSurvived && b.thresholds.empty())
      out.reason = std::to_string(passed) + (passed == 1 ? " test passed" : " tests passed");
  }
};

}  // namespace

const KindStrategy& gtest_kind() {
  static const GtestKind k;
  return k;
}

}  // namespace popper::harness
