// An item's `falsifier:` binding as typed values: how its check runs (kind, target, filter,
// profiles) and the thresholds its figures are held to. Kinds, threshold ops and statistics are
// enums from the moment the YAML is read (contract.cpp); their names appear only in the YAML,
// in messages and in evidence.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace popper::harness {

// 1-based line and column in the YAML file; 0 when unknown.
struct SourcePos {
  int line = 0;
  int col = 0;
};

enum class BindingKind { kGtest, kBenchmark, kCommand };
// "gtest" | "benchmark" | "command".
const char* binding_kind_name(BindingKind k);
std::optional<BindingKind> parse_binding_kind(std::string_view s);

enum class ThresholdOp { kGe, kGt, kLe, kLt };
// ">=" | ">" | "<=" | "<".
const char* threshold_op_name(ThresholdOp op);
std::optional<ThresholdOp> parse_threshold_op(std::string_view s);
// Whether `x op value` holds.
bool threshold_holds(ThresholdOp op, double x, double value);
// >= and >: larger figures are better.
inline bool is_floor(ThresholdOp op) { return op == ThresholdOp::kGe || op == ThresholdOp::kGt; }

enum class Statistic { kMedian, kMean, kExact };
// "median" | "mean" | "exact".
const char* statistic_name(Statistic s);
std::optional<Statistic> parse_statistic(std::string_view s);

// A performance or quality floor/ceiling judged on a confidence interval of repeated samples.
// op and statistic mean something only when the loader reported no error for the threshold.
struct Threshold {
  std::string metric;  // a benchmark JSON field/counter or a gtest "metric.<name>" property
  ThresholdOp op = ThresholdOp::kGe;
  double value = 0;
  Statistic statistic = Statistic::kMedian;  // exact: deterministic values, judged as-is
  double confidence = 0.95;
  std::string profile;  // empty: applies under every profile
  SourcePos pos;
};

// A named variant of a binding (e.g. CI on the tiny model vs the full 48-layer file).
struct Profile {
  std::string name;
  std::string description;
  std::optional<std::string> model;
  std::vector<std::string> requires_;
  std::optional<double> timeout_s;
  std::optional<int> repetitions;
  std::map<std::string, std::string> env;
  SourcePos pos;
};

// How to run the check for one item.
struct Binding {
  std::optional<BindingKind> kind;     // absent when the YAML's kind was missing or unknown
  std::string target;                  // executable under <build>/falsifiers or <build>/benchmarks
  std::string filter;                  // --gtest_filter pattern or --benchmark_filter regex
  std::vector<std::string> command;    // kind: command — argv; "popper" means this binary
  std::vector<std::string> requires_;  // "gpu", "model:<name>"
  std::string model;                   // model name (tiny-qwen3moe-q4_k_m) or path
  double timeout_s = 300;
  int repetitions = 9;           // benchmarks only
  std::optional<uint64_t> seed;  // passed as POPPER_SEED
  std::map<std::string, std::string> env;
  std::vector<Threshold> thresholds;
  std::vector<Profile> profiles;  // the first one is the default profile
  SourcePos pos;
  SourcePos target_pos;

  bool is(BindingKind k) const { return kind == k; }
};

// An item's negative control: the engine faults (engine/core/faults.h) under which its check must
// come out falsified, run after the item by `popper run --controls`. A check that survives its
// control cannot fail, so its item is unfalsifiable (contracts/README.md, "Controls").
struct Control {
  std::vector<std::string> faults;  // switched on together (POPPER_FAULTS=a,b)
  std::string filter;               // optional: a narrower filter for the control run
  std::optional<int> repetitions;   // optional, benchmarks: fewer repetitions for the control run
  std::string note;                 // optional prose: why this fault, or why one is hard to place
  SourcePos pos;
};

}  // namespace popper::harness
