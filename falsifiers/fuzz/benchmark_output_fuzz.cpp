// Fuzz target: the readers of what a benchmark or command falsifier wrote
// (harness/run/outputs.h): Google Benchmark's --benchmark_out JSON and a `kind: command`
// metrics file, both given the same bytes.
//
// Properties: an error says what was malformed; accepted output has only finite samples (a
// NaN or infinite figure would slip past a threshold), error and inconclusive messages listed
// once each, and a metrics file's figures under the one source it was read for.
#include <cmath>
#include <set>

#include "falsifiers/fuzz/fuzz_target.h"
#include "harness/run/outputs.h"

namespace popper::fuzz {
namespace {

void check_finite(const harness::MetricTable& metrics) {
  for (const auto& [source, table] : metrics)
    for (const auto& [name, samples] : table)
      for (double x : samples)
        fuzz_require(std::isfinite(x), "metric samples are finite: " + source + " " + name);
}

void check_unique(const std::vector<std::string>& v, const char* what) {
  fuzz_require(std::set<std::string>(v.begin(), v.end()).size() == v.size(),
               std::string(what) + " listed once each");
}

void benchmark_output_one_input(Bytes data) {
  const std::string text(data.begin(), data.end());
  auto b = harness::parse_benchmark_output(text);
  if (!b.ok()) {
    fuzz_require(b.message().find("--benchmark_out JSON") != std::string::npos,
                 "an error says what was malformed: " + b.message());
  } else {
    check_finite(b->metrics);
    check_unique(b->errors, "errors");
    check_unique(b->inconclusive, "inconclusive reasons");
    for (const auto& r : b->inconclusive)
      fuzz_require(r.find(": ") != std::string::npos, "a reason names its run");
  }
  auto m = harness::parse_metrics_file(text, "FALSIFY-X_V1_001");
  if (!m.ok()) {
    fuzz_require(m.message().find("metrics") != std::string::npos,
                 "an error says what was malformed: " + m.message());
    return;
  }
  check_finite(m->metrics);
  fuzz_require(
      m->metrics.size() <= 1 && (m->metrics.empty() || m->metrics.begin()->first == "FALSIFY-X_V1_001"),
      "a metrics file's figures are the item's");
}

}  // namespace
}  // namespace popper::fuzz

// Seeds: committed (seeds/benchmark_output/): the harness fixture benchmark's real output.
POPPER_FUZZ_TARGET(benchmark_output, popper::fuzz::benchmark_output_one_input, nullptr);
