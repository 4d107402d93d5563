// kind: benchmark — a Google Benchmark executable under <build>/benchmarks, run with repetitions
// in random interleaving. Its figures are judged by the item's thresholds (stats.h);
// SkipWithError("inconclusive: <reason>") is inconclusive, any other SkipWithError an error, and
// figures with no threshold under the running profile claim nothing (inconclusive).
#include <sstream>

#include "harness/run/kinds.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace {
using nlohmann::json;

class BenchmarkKind final : public KindStrategy {
 public:
  const char* unit() const override { return "benchmark"; }

  TargetLocation locate(const Binding& b, const std::string& build_dir, const std::string&) const override {
    return locate_built_target(b.target, build_dir, "benchmarks");
  }

  Result<std::vector<std::string>> list(const std::string& exe, const std::string& filter) const override {
    std::vector<std::string> argv{exe, "--benchmark_list_tests=true"};
    if (!filter.empty()) argv.push_back("--benchmark_filter=" + filter);
    auto out = capture_output(argv, "", 60);
    if (!out.ok()) return make_error("listing benchmarks of ", exe, " failed: ", out.message());
    std::vector<std::string> names;
    std::istringstream in(*out);
    std::string line;
    while (std::getline(in, line))
      if (!trim(line).empty()) names.push_back(trim(line));
    return names;
  }

  std::vector<std::string> argv(const Binding& b, const std::string& exe, const std::string& out_json, bool,
                                std::map<std::string, std::string>&) const override {
    std::vector<std::string> a{exe,
                               "--benchmark_out=" + out_json,
                               "--benchmark_out_format=json",
                               "--benchmark_repetitions=" + std::to_string(b.repetitions),
                               "--benchmark_enable_random_interleaving=true",
                               "--benchmark_color=false"};
    if (!b.filter.empty()) a.push_back("--benchmark_filter=" + b.filter);
    return a;
  }

  Result<ParsedOutput> parse(const std::string& text, const ChildRun&, const std::string&) const override {
    return parse_benchmark_output(text);
  }

  void interpret(const ParsedOutput& p, const ChildRun& run, Outcome& out, json& detail) const override {
    if (!p.context.empty()) detail["benchmark_context"] = p.context;
    for (const auto& e : p.errors) out.add(Verdict::kError, "benchmark error: " + e);
    for (const auto& e : p.inconclusive) out.add(Verdict::kInconclusive, e);
    if (p.metrics.empty() && p.errors.empty() && p.inconclusive.empty())
      out.add(Verdict::kError,
              "filter '" + run.binding.filter + "' matched no benchmarks in " + run.binding.target);
    else if (run.process.exit_code != 0)
      out.add(Verdict::kError, "exit code " + std::to_string(run.process.exit_code));
  }

  void conclude(const ParsedOutput& p, const ChildRun& run, Outcome& out) const override {
    if (!run.binding.thresholds.empty() || out.verdict != Verdict::kSurvived) return;
    // Figures with nothing to hold them to under this profile: recorded, but no claim was tested.
    std::string figures;
    for (const Threshold& t : run.declared.thresholds)
      for (const auto& [source, table] : p.metrics)
        if (auto it = table.find(t.metric); it != table.end() && figures.find(t.metric) == std::string::npos)
          figures += (figures.empty() ? "" : ", ") + t.metric + " median " + fmt_num(median(it->second));
    out.verdict = Verdict::kInconclusive;
    out.reason = "no threshold applies under profile '" + run.profile + "'" +
                 (figures.empty() ? "" : "; recorded " + figures) + " (figures in the evidence)";
  }
};

}  // namespace

const KindStrategy& benchmark_kind() {
  static const BenchmarkKind k;
  return k;
}

}  // namespace popper::harness
