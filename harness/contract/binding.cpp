#include "harness/contract/binding.h"

namespace popper::harness {

const char* binding_kind_name(BindingKind k) {
  switch (k) {
    case BindingKind::kGtest:
      return "gtest";
    case BindingKind::kBenchmark:
      return "benchmark";
    case BindingKind::kCommand:
      return "command";
  }
  return "?";
}

std::optional<BindingKind> parse_binding_kind(std::string_view s) {
  for (BindingKind k : {BindingKind::kGtest, BindingKind::kBenchmark, BindingKind::kCommand})
    if (s == binding_kind_name(k)) return k;
  return std::nullopt;
}

const char* threshold_op_name(ThresholdOp op) {
  switch (op) {
    case ThresholdOp::kGe:
      return ">=";
    case ThresholdOp::kGt:
      return ">";
    case ThresholdOp::kLe:
      return "<=";
    case ThresholdOp::kLt:
      return "<";
  }
  return "?";
}

std::optional<ThresholdOp> parse_threshold_op(std::string_view s) {
  for (ThresholdOp op : {ThresholdOp::kGe, ThresholdOp::kGt, ThresholdOp::kLe, ThresholdOp::kLt})
    if (s == threshold_op_name(op)) return op;
  return std::nullopt;
}

bool threshold_holds(ThresholdOp op, double x, double value) {
  switch (op) {
    case ThresholdOp::kGe:
      return x >= value;
    case ThresholdOp::kGt:
      return x > value;
    case ThresholdOp::kLe:
      return x <= value;
    case ThresholdOp::kLt:
      return x < value;
  }
  return false;
}

const char* statistic_name(Statistic s) {
  switch (s) {
    case Statistic::kMedian:
      return "median";
    case Statistic::kMean:
      return "mean";
    case Statistic::kExact:
      return "exact";
  }
  return "?";
}

std::optional<Statistic> parse_statistic(std::string_view s) {
  for (Statistic st : {Statistic::kMedian, Statistic::kMean, Statistic::kExact})
    if (s == statistic_name(st)) return st;
  return std::nullopt;
}

}  // namespace popper::harness
