// Inline SVG line charts for the report: one series of runs, its raw repetitions as faint dots,
// the median of each run joined by a line, threshold lines with the failing side shaded. Pure
// markup (titles give the numbers on hover); no script, no external resources.
#pragma once

#include <string>
#include <vector>

#include "harness/report/markup_escape.h"
#include "harness/report/report.h"

namespace popper::harness {

// `labels[i]` names run `s.points[i].run` on the x axis (short commit).
std::string render_series_svg(const Series& s, const std::vector<std::string>& labels);

}  // namespace popper::harness
