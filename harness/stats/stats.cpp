#include "harness/stats/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace popper::harness {
namespace {

// Continued fraction for the regularized incomplete beta (modified Lentz), from its standard
// expansion (Abramowitz & Stegun 26.5.8).
double beta_cf(double a, double b, double x) {
  const double kTiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double ln_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(ln_front) * beta_cf(a, b, x) / a;
  return 1 - std::exp(ln_front) * beta_cf(b, a, 1 - x) / b;
}

double student_t_cdf(double t, double df) {
  double x = df / (df + t * t);
  double tail = 0.5 * incomplete_beta(df / 2, 0.5, x);
  return t >= 0 ? 1 - tail : tail;
}

// log C(n, k)
double log_choose(int n, int k) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0);
}

}  // namespace

std::string fmt_num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

double median(std::vector<double> s) {
  if (s.empty()) return NAN;
  std::sort(s.begin(), s.end());
  size_t n = s.size();
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

double mean(const std::vector<double>& s) {
  if (s.empty()) return NAN;
  return std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
}

double stddev(const std::vector<double>& s) {
  if (s.size() < 2) return 0;
  double m = mean(s), acc = 0;
  for (double x : s) acc += (x - m) * (x - m);
  return std::sqrt(acc / static_cast<double>(s.size() - 1));
}

double student_t_quantile(double p, double df) {
  // Bisection on the CDF: monotone, and 200 halvings of [-1e4, 1e4] reach double precision.
  double lo = -1e4, hi = 1e4;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    if (student_t_cdf(mid, df) < p)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

std::optional<Interval> median_ci(std::vector<double> s, double confidence) {
  const int n = static_cast<int>(s.size());
  if (n == 0) return std::nullopt;
  const double alpha_half = (1 - confidence) / 2;
  // Largest k with P(Bin(n, 1/2) <= k - 1) <= alpha/2.
  int k = 0;
  double cum = 0;
  for (int j = 0; j < n; ++j) {
    cum += std::exp(log_choose(n, j) - n * std::log(2.0));
    if (cum <= alpha_half)
      k = j + 1;
    else
      break;
  }
  if (k < 1) return std::nullopt;
  std::sort(s.begin(), s.end());
  return Interval{s[k - 1], s[n - k]};
}

std::optional<Interval> mean_ci(const std::vector<double>& s, double confidence) {
  if (s.size() < 2) return std::nullopt;
  double m = mean(s);
  double half = student_t_quantile(1 - (1 - confidence) / 2, static_cast<double>(s.size() - 1)) * stddev(s) /
                std::sqrt(static_cast<double>(s.size()));
  return Interval{m - half, m + half};
}

ThresholdJudgement judge_threshold(const Threshold& t, const std::vector<double>& samples) {
  ThresholdJudgement j;
  j.n = samples.size();
  const std::string what = t.metric + " " + threshold_op_name(t.op) + " " + fmt_num(t.value);
  const std::string statistic = statistic_name(t.statistic);
  for (double x : samples) {
    if (!std::isfinite(x)) {
      j.reason = t.metric + ": a sample is not a finite number";
      return j;
    }
  }
  if (samples.empty()) {
    j.reason = t.metric + ": no samples reported";
    return j;
  }
  if (t.statistic == Statistic::kExact) {
    // Deterministic figure: the worst sample decides.
    bool upper = is_floor(t.op);
    j.point = upper ? *std::min_element(samples.begin(), samples.end())
                    : *std::max_element(samples.begin(), samples.end());
    j.ci_low = j.ci_high = j.point;
    bool ok = threshold_holds(t.op, j.point, t.value);
    j.verdict = ok ? ThresholdVerdict::kSurvived : ThresholdVerdict::kFalsified;
    j.reason = t.metric + " = " + fmt_num(j.point) +
               (samples.size() > 1 ? " (worst of " + std::to_string(j.n) + ")" : "") +
               (ok ? " holds " : " fails ") + what;
    return j;
  }
  std::optional<Interval> ci =
      t.statistic == Statistic::kMean ? mean_ci(samples, t.confidence) : median_ci(samples, t.confidence);
  j.point = t.statistic == Statistic::kMean ? mean(samples) : median(samples);
  char level[16];
  std::snprintf(level, sizeof level, "%g%%", t.confidence * 100);
  if (!ci) {
    j.ci_low = j.ci_high = j.point;
    j.reason = t.metric + ": " + std::to_string(j.n) + " samples are too few for a " + level + " CI of the " +
               statistic + " (" + statistic + " " + fmt_num(j.point) + "); add repetitions";
    return j;
  }
  j.ci_low = ci->low;
  j.ci_high = ci->high;
  bool upper = is_floor(t.op);
  double conservative = upper ? ci->low : ci->high;
  double optimistic = upper ? ci->high : ci->low;
  std::string figure = statistic + " " + t.metric + " " + fmt_num(j.point) + ", " + level + " CI [" +
                       fmt_num(ci->low) + ", " + fmt_num(ci->high) + "], n=" + std::to_string(j.n);
  if (threshold_holds(t.op, conservative, t.value)) {
    j.verdict = ThresholdVerdict::kSurvived;
    j.reason = figure + ": holds " + what;
  } else if (!threshold_holds(t.op, optimistic, t.value)) {
    j.verdict = ThresholdVerdict::kFalsified;
    j.reason = figure + ": fails " + what;
  } else {
    j.verdict = ThresholdVerdict::kInconclusive;
    j.reason = figure + ": CI straddles " + what;
  }
  return j;
}

}  // namespace popper::harness
