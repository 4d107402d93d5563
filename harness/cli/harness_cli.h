// Shared by the harness commands (validate, run, gate, verify-evidence): default locations and
// terminal presentation of verdicts.
#pragma once

#include <string>

#include "harness/verdict.h"

namespace popper::cli {

// Colour only on a terminal and when NO_COLOR is unset (https://no-color.org).
bool use_color(int fd);

// "survived" in green, "falsified" in red, "inconclusive" in yellow, "error" in magenta, padded
// to the widest verdict so columns line up.
std::string verdict_label(harness::Verdict v, bool color);

// "1.2 s", "3 min 4 s".
std::string format_duration(double s);

}  // namespace popper::cli
