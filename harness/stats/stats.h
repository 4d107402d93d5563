// Threshold judgement on repeated samples.
//
// A threshold is never judged on one sample. The statistic (median by default, or mean) gets a
// two-sided confidence interval from the repetitions, and the verdict takes the conservative
// side: for "tok/s >= 5" the item survives only when the whole interval is at or above 5, is
// falsified only when the whole interval is below 5, and is inconclusive when the interval
// straddles the threshold. Noise around the threshold therefore gives `inconclusive`, not a
// survived/falsified flip-flop.
//
//  - median: distribution-free order-statistic interval [x_(k), x_(n-k+1)] with k the largest
//    rank such that P(Binomial(n, 1/2) < k) <= alpha/2 (needs n >= 6 at 95%).
//  - mean: Student-t interval mean +- t_{1-alpha/2, n-1} s / sqrt(n) (needs n >= 2).
//  - exact: for deterministic figures (a pass rate over a fixed corpus): every sample must hold.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/contract/binding.h"

namespace popper::harness {

enum class ThresholdVerdict { kSurvived, kFalsified, kInconclusive };

struct ThresholdJudgement {
  ThresholdVerdict verdict = ThresholdVerdict::kInconclusive;
  size_t n = 0;
  double point = 0;  // the statistic (median, mean, or the worst sample for exact)
  double ci_low = 0;
  double ci_high = 0;
  std::string reason;  // "median 7.91 tok/s, 95% CI [7.80, 8.02] >= 5" / "... straddles 5"
};

ThresholdJudgement judge_threshold(const Threshold& t, const std::vector<double>& samples);

struct Interval {
  double low = 0, high = 0;
};
// Order-statistic CI of the median; nullopt when n is too small for the level.
std::optional<Interval> median_ci(std::vector<double> samples, double confidence);
// Student-t CI of the mean; nullopt when n < 2.
std::optional<Interval> mean_ci(const std::vector<double>& samples, double confidence);

double median(std::vector<double> samples);
double mean(const std::vector<double>& samples);
double stddev(const std::vector<double>& samples);  // sample (n-1) standard deviation

// Quantile of Student's t with `df` degrees of freedom (p in (0, 1)).
double student_t_quantile(double p, double df);

// "7.91" — compact figure for messages (4 significant digits).
std::string fmt_num(double v);

}  // namespace popper::harness
