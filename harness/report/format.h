// Durations as people read them, for the report, the gate's outputs and the run's progress lines:
// "25 µs", "340 ms", "1.2 s", "3 min 4 s", "2 h 5 min" — never "2.545e-05 s".
#pragma once

#include <string>

namespace popper::harness {

std::string format_duration(double seconds);

}  // namespace popper::harness
