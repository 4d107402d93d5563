#include "harness/report/format.h"

#include <cmath>
#include <cstdio>

namespace popper::harness {

std::string format_duration(double s) {
  char buf[48];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.0f µs", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.0f ms", s * 1e3);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%d min %d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%d h %d min", static_cast<int>(s) / 3600,
                  static_cast<int>(s) % 3600 / 60);
  return buf;
}

}  // namespace popper::harness
