// Mann-Whitney U test (Wilcoxon rank-sum) for "did this figure move between two runs?".
//
// The report compares the raw repetitions of the latest run with those of the run before: no
// normality assumption (benchmark timings are skewed and heavy-tailed), only that repetitions
// within a run are exchangeable. Two-sided p-value: exact (the null distribution of U counted
// as the coefficients of the Gaussian binomial [n1+n2 choose n1]_q) when there are no ties and
// n1*n2 <= kExactMaxProduct; otherwise the normal approximation with tie correction and
// continuity correction (Hollander & Wolfe, Nonparametric Statistical Methods, 4.1).
#pragma once

#include <optional>
#include <vector>

namespace popper::harness {

struct MannWhitney {
  size_t n1 = 0, n2 = 0;
  double u1 = 0;  // pairs (x in a, y in b) with x > y, ties counting 1/2
  double p = 1;   // two-sided
  bool exact = false;
  // Cliff's delta = P(x > y) - P(x < y) = 2*u1/(n1*n2) - 1, in [-1, 1]: +1 when every sample of
  // `a` exceeds every sample of `b`. |delta| >= 0.474 is conventionally "large" (Romano et al.).
  double cliffs_delta = 0;
};

// Exact p-values up to this many pairs (20 x 20 repetitions): the table is n1*n2 doubles.
inline constexpr size_t kExactMaxProduct = 400;

// nullopt when either side has no samples.
std::optional<MannWhitney> mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace popper::harness
