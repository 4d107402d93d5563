#include "harness/run/clock.h"

#include <ctime>

namespace popper::harness {
namespace {

std::string format_time(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

}  // namespace

std::string utc_timestamp_iso() { return format_time("%Y-%m-%dT%H:%M:%SZ"); }
std::string utc_timestamp_compact() { return format_time("%Y%m%dT%H%M%SZ"); }
std::string utc_date() { return format_time("%Y-%m-%d"); }

}  // namespace popper::harness
