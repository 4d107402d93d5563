#include "harness/stats/mann_whitney.h"

#include <algorithm>
#include <cmath>

namespace popper::harness {
namespace {

// P(U <= u) under H0 for sample sizes m, n without ties: the number of arrangements with
// statistic k is the coefficient of q^k in [m+n choose m]_q = prod_{i=1..m} (1-q^(n+i))/(1-q^i).
std::vector<double> exact_u_distribution(size_t m, size_t n) {
  std::vector<double> poly(m * n + 1, 0.0);
  poly[0] = 1;
  for (size_t i = 1; i <= m; ++i) {
    // Multiply by (1 - q^(n+i)) ...
    for (size_t k = poly.size(); k-- > n + i;) poly[k] -= poly[k - (n + i)];
    // ... and divide by (1 - q^i): r[k] = p[k] + r[k-i].
    for (size_t k = i; k < poly.size(); ++k) poly[k] += poly[k - i];
  }
  double total = 0;
  for (double c : poly) total += c;
  for (double& c : poly) c /= total;
  return poly;
}

}  // namespace

std::optional<MannWhitney> mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) return std::nullopt;
  MannWhitney r;
  r.n1 = a.size();
  r.n2 = b.size();
  // Ranks of the pooled samples, ties getting their average rank.
  struct Obs {
    double v;
    bool from_a;
  };
  std::vector<Obs> all;
  for (double v : a) all.push_back({v, true});
  for (double v : b) all.push_back({v, false});
  std::sort(all.begin(), all.end(), [](const Obs& x, const Obs& y) { return x.v < y.v; });
  const double N = static_cast<double>(all.size());
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].v == all[i].v) ++j;
    double t = static_cast<double>(j - i);
    double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k)
      if (all[k].from_a) rank_sum_a += avg_rank;
    if (t > 1) {
      ties = true;
      tie_term += t * t * t - t;
    }
    i = j;
  }
  const double n1 = static_cast<double>(r.n1), n2 = static_cast<double>(r.n2);
  r.u1 = rank_sum_a - n1 * (n1 + 1) / 2;
  r.cliffs_delta = 2 * r.u1 / (n1 * n2) - 1;
  if (!ties && r.n1 * r.n2 <= kExactMaxProduct) {
    std::vector<double> pmf = exact_u_distribution(r.n1, r.n2);
    size_t u = static_cast<size_t>(std::llround(r.u1));
    double lower = 0, upper = 0;
    for (size_t k = 0; k <= u; ++k) lower += pmf[k];
    for (size_t k = u; k < pmf.size(); ++k) upper += pmf[k];
    r.p = std::min(1.0, 2 * std::min(lower, upper));
    r.exact = true;
    return r;
  }
  const double mu = n1 * n2 / 2;
  const double var = n1 * n2 / 12 * ((N + 1) - tie_term / (N * (N - 1)));
  if (var <= 0) {  // every sample equal: no evidence of any difference
    r.p = 1;
    return r;
  }
  const double z = std::max(0.0, std::fabs(r.u1 - mu) - 0.5) / std::sqrt(var);
  r.p = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  return r;
}

}  // namespace popper::harness
