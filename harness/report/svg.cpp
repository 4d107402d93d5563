#include "harness/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "harness/stats/stats.h"

namespace popper::harness {
namespace {

// Chart geometry, in SVG user units (the element scales to its container).
constexpr double kWidth = 640, kHeight = 220;
constexpr double kLeft = 58, kRight = 64, kTop = 14, kBottom = 36;
constexpr double kPad = 0.08;  // head room above and below the data, as a fraction of its range

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Tick step of 1, 2 or 5 times a power of ten giving about `target` ticks.
double nice_step(double range, int target) {
  double raw = range / target;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

}  // namespace

std::string render_series_svg(const Series& s, const std::vector<std::string>& labels) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& p : s.points)
    for (double v : p.samples) lo = std::min(lo, v), hi = std::max(hi, v);
  for (const auto& t : s.thresholds) lo = std::min(lo, t.value), hi = std::max(hi, t.value);
  if (!(hi > lo)) {  // one value everywhere: give it a band
    double d = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= d, hi += d;
  }
  double pad = (hi - lo) * kPad;
  lo -= pad, hi += pad;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  const size_t n = s.points.size();
  auto X = [&](size_t i) {
    return kLeft + (n == 1 ? pw / 2 : pw * static_cast<double>(i) / static_cast<double>(n - 1));
  };
  auto Y = [&](double v) { return kTop + ph * (1 - (v - lo) / (hi - lo)); };

  std::ostringstream o;
  o << "<svg class=\"chart\" viewBox=\"0 0 " << kWidth << " " << kHeight
    << "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>" << markup_escape(s.metric) << " of "
    << markup_escape(s.item_id) << " across " << n << " run" << (n == 1 ? "" : "s") << "</title>";
  // Failing side of each threshold, shaded; then grid and axis labels.
  for (const auto& t : s.thresholds) {
    double y = Y(t.value);
    bool fail_below = t.op[0] == '>';
    double y0 = fail_below ? y : kTop, y1 = fail_below ? kTop + ph : y;
    if (y1 > y0)
      o << "<rect class=\"fail-zone\" x=\"" << num(kLeft) << "\" y=\"" << num(y0) << "\" width=\"" << num(pw)
        << "\" height=\"" << num(y1 - y0) << "\"/>";
  }
  double step = nice_step(hi - lo, 4);
  for (double v = std::ceil(lo / step) * step; v <= hi; v += step) {
    o << "<line class=\"grid\" x1=\"" << num(kLeft) << "\" x2=\"" << num(kLeft + pw) << "\" y1=\""
      << num(Y(v)) << "\" y2=\"" << num(Y(v)) << "\"/><text class=\"tick\" x=\"" << num(kLeft - 6)
      << "\" y=\"" << num(Y(v) + 4) << "\" text-anchor=\"end\">"
      << fmt_num(std::fabs(v) < step * 1e-9 ? 0 : v) << "</text>";
  }
  // At most ~10 x labels so they never overlap.
  size_t every = std::max<size_t>(1, (n + 9) / 10);
  for (size_t i = 0; i < n; ++i) {
    if (i % every != 0 && i != n - 1) continue;
    o << "<text class=\"tick\" x=\"" << num(X(i)) << "\" y=\"" << num(kTop + ph + 16)
      << "\" text-anchor=\"middle\">" << markup_escape(i < labels.size() ? labels[i] : std::to_string(i + 1))
      << "</text>";
  }
  for (const auto& t : s.thresholds) {
    double y = Y(t.value);
    o << "<line class=\"threshold\" x1=\"" << num(kLeft) << "\" x2=\"" << num(kLeft + pw) << "\" y1=\""
      << num(y) << "\" y2=\"" << num(y) << "\"/><text class=\"threshold-label\" x=\"" << num(kLeft + pw + 4)
      << "\" y=\"" << num(y + 4) << "\">" << markup_escape(t.op) << " " << fmt_num(t.value) << "</text>";
  }
  // Raw repetitions, spread a little sideways (deterministically) so equal values stay visible.
  for (size_t i = 0; i < n; ++i) {
    const auto& p = s.points[i];
    for (size_t k = 0; k < p.samples.size(); ++k) {
      double jitter = (static_cast<double>(k % 7) - 3) * 1.6;
      o << "<circle class=\"sample\" cx=\"" << num(X(i) + jitter) << "\" cy=\"" << num(Y(p.samples[k]))
        << "\" r=\"2\"/>";
    }
  }
  // Median line: the last segment red when the latest change is a regression.
  bool regressed = s.change && s.change->kind == ChangeKind::kRegression;
  if (n > 1) {
    o << "<polyline class=\"median\" points=\"";
    for (size_t i = 0; i + (regressed ? 1 : 0) < n; ++i)
      o << num(X(i)) << "," << num(Y(s.points[i].median)) << " ";
    o << "\"/>";
    if (regressed)
      o << "<line class=\"median regressed\" x1=\"" << num(X(n - 2)) << "\" y1=\""
        << num(Y(s.points[n - 2].median)) << "\" x2=\"" << num(X(n - 1)) << "\" y2=\""
        << num(Y(s.points[n - 1].median)) << "\"/>";
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& p = s.points[i];
    o << "<circle class=\"median-dot" << (regressed && i == n - 1 ? " regressed" : "") << "\" cx=\""
      << num(X(i)) << "\" cy=\"" << num(Y(p.median)) << "\" r=\"3.5\"><title>"
      << markup_escape(i < labels.size() ? labels[i] : "") << ": median " << fmt_num(p.median)
      << ", n=" << p.samples.size() << "</title></circle>";
  }
  o << "<line class=\"axis\" x1=\"" << num(kLeft) << "\" x2=\"" << num(kLeft) << "\" y1=\"" << num(kTop)
    << "\" y2=\"" << num(kTop + ph) << "\"/><line class=\"axis\" x1=\"" << num(kLeft) << "\" x2=\""
    << num(kLeft + pw) << "\" y1=\"" << num(kTop + ph) << "\" y2=\"" << num(kTop + ph) << "\"/></svg>";
  return o.str();
}

}  // namespace popper::harness
