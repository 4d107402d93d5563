// Reading what a falsifier wrote: GoogleTest JSON (plus the skip reasons it prints), Google
// Benchmark JSON, and the metrics file of a `kind: command` check.
//
// Metrics: a benchmark reports every numeric field of its per-repetition entries (real_time,
// cpu_time, items_per_second, user counters such as tokens_per_second). A gtest reports a metric
// with RecordProperty("metric.<name>", "v1,v2,...") (one value or a comma-separated list). A
// command writes {"metrics": {"<name>": [v1, v2, ...]}} to the file named by $POPPER_METRICS_OUT.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace popper::harness {

struct TestCaseResult {
  std::string name;    // Suite.Name
  std::string status;  // passed | failed | skipped | not_run
  double time_s = 0;
  std::vector<std::string> failures;  // the failing assertions' messages
  std::string skip_reason;            // GTEST_SKIP() << reason
  std::map<std::string, std::string> properties;
};

// metrics[source][metric] = samples, where source is a test or benchmark run name.
using MetricTable = std::map<std::string, std::map<std::string, std::vector<double>>>;

struct ParsedOutput {
  std::vector<TestCaseResult> tests;
  MetricTable metrics;
  std::vector<std::string> errors;        // benchmark SkipWithError messages (not "inconclusive:")
  std::vector<std::string> inconclusive;  // benchmark SkipWithError("inconclusive: <reason>")
  nlohmann::json context;                 // benchmark context block, if any
};

// `json_text` is the --gtest_output=json file; `stdout_text` supplies skip reasons, which
// GoogleTest 1.12 does not put in the JSON.
Result<ParsedOutput> parse_gtest_output(const std::string& json_text, const std::string& stdout_text);
Result<ParsedOutput> parse_benchmark_output(const std::string& json_text);
Result<ParsedOutput> parse_metrics_file(const std::string& json_text, const std::string& source);

// `s` without leading and trailing spaces, tabs and line ends.
std::string trim(const std::string& s);
// {"a", "b"}, "," -> "a,b".
std::string join(const std::vector<std::string>& parts, const std::string& sep);

// "1.5, 2, 3" -> {1.5, 2, 3}; error on anything that is not a number list.
Result<std::vector<double>> parse_number_list(const std::string& s);

}  // namespace popper::harness
