// Fuzz target: the reader of what a GoogleTest falsifier wrote (harness/run/outputs.h,
// parse_gtest_output): its --gtest_output JSON and the log that holds GTEST_SKIP reasons.
//
// Input: the JSON, a NUL byte, then the log (no NUL: the log is empty).
// Properties: an error says what was malformed; an accepted output gives each test one of the
// four statuses, failed exactly when it has failures (and was run), a skip reason for every
// skipped test, and metrics only for tests it lists, each sample a finite number (a NaN or
// infinite figure would slip past a threshold instead of failing it).
#include <cmath>
#include <set>

#include "falsifiers/fuzz/fuzz_target.h"
#include "harness/run/outputs.h"

namespace popper::fuzz {
namespace {

void check_metrics(const harness::MetricTable& metrics, const std::set<std::string>& sources) {
  for (const auto& [source, table] : metrics) {
    fuzz_require(sources.count(source) == 1, "metrics belong to a listed test: " + source);
    for (const auto& [name, samples] : table) {
      fuzz_require(!samples.empty(), "a metric has samples: " + name);
      for (double x : samples)
        fuzz_require(std::isfinite(x), "metric samples are finite: " + source + " " + name);
    }
  }
}

void gtest_output_one_input(Bytes data) {
  const std::string all(data.begin(), data.end());
  const size_t nul = all.find('\0');
  const std::string json_text = all.substr(0, nul);
  const std::string log = nul == std::string::npos ? "" : all.substr(nul + 1);
  auto out = harness::parse_gtest_output(json_text, log);
  if (!out.ok()) {
    fuzz_require(out.message().find("gtest_output JSON") != std::string::npos ||
                     out.message().find(": property metric.") != std::string::npos,
                 "an error says what was malformed: " + out.message());
    return;
  }
  std::set<std::string> names;
  for (const auto& t : out->tests) {
    names.insert(t.name);
    static const std::set<std::string> kStatuses = {"passed", "failed", "skipped", "not_run"};
    fuzz_require(kStatuses.count(t.status) == 1, "a known status: " + t.status);
    if (t.status != "not_run")
      fuzz_require((t.status == "failed") == !t.failures.empty(), "failed exactly when there are failures");
    fuzz_require(t.status != "skipped" || !t.skip_reason.empty(), "a skipped test has a reason");
  }
  check_metrics(out->metrics, names);
}

}  // namespace
}  // namespace popper::fuzz

// Seeds: committed (seeds/gtest_output/): the harness fixture binary's real output, which only
// exists after a build.
POPPER_FUZZ_TARGET(gtest_output, popper::fuzz::gtest_output_one_input, nullptr);
