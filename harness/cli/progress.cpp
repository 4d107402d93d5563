#include "harness/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "harness/cli/harness_cli.h"

namespace popper::cli {

Progress::Progress(int total, size_t id_width)
    : total_(total), id_width_(id_width), tty_(::isatty(STDERR_FILENO)), color_(use_color(STDERR_FILENO)) {}

void Progress::start(const std::string& id) {
  ++index_;
  id_ = id;
  last_draw_ = -1;
  if (tty_) draw(0);
}

void Progress::tick(double elapsed) {
  if (tty_ && elapsed - last_draw_ >= 0.2) draw(elapsed);
}

void Progress::finish(const harness::ItemResult& r) {
  std::string reason = r.reason;
  if (reason.size() > 240) reason = reason.substr(0, 237) + "...";
  std::fprintf(stderr, "%s%s %-*s  %s %8s  %s\n", tty_ ? "\r\033[K" : "", prefix().c_str(),
               static_cast<int>(id_width_), r.id.c_str(), verdict_label(r.verdict, color_).c_str(),
               format_duration(r.duration_s).c_str(), reason.c_str());
  std::fflush(stderr);
}

std::string Progress::prefix() const {
  std::string i = std::to_string(index_), t = std::to_string(total_);
  return "[" + std::string(t.size() - std::min(t.size(), i.size()), ' ') + i + "/" + t + "]";
}

void Progress::draw(double elapsed) {
  last_draw_ = elapsed;
  std::fprintf(stderr, "\r\033[K%s %-*s  running %8s", prefix().c_str(), static_cast<int>(id_width_),
               id_.c_str(), format_duration(elapsed).c_str());
  std::fflush(stderr);
}

}  // namespace popper::cli
