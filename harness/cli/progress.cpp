#include "harness/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "harness/cli/harness_cli.h"
#include "harness/report/format.h"
#include "harness/run/outputs.h"

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
  print_line(prefix() + " " + pad(r.id), verdict_label(r.verdict, color_), r.duration_s, r.reason);
}

void Progress::start_control(const harness::Item& item) {
  id_ = "└ control (" + harness::join(item.control->faults, ",") + ")";
  last_draw_ = -1;
  if (tty_) draw(0);
}

void Progress::finish_control(const harness::ControlResult& c) {
  std::string label = verdict_label(c.verdict, color_);
  std::string reason = c.reason;
  // The wanted outcome is falsified; a control that survived shows what that means.
  if (c.unfalsifiable()) reason = "UNFALSIFIABLE: the check passed with the fault on; " + reason;
  print_line(std::string(prefix().size(), ' ') + " " + pad(id_), label, c.duration_s, reason);
}

void Progress::print_line(const std::string& head, const std::string& label, double seconds,
                          const std::string& why) {
  std::string reason = why;
  if (reason.size() > 240) reason = reason.substr(0, 237) + "...";
  std::fprintf(stderr, "%s%s  %s %8s  %s\n", tty_ ? "\r\033[K" : "", head.c_str(), label.c_str(),
               harness::format_duration(seconds).c_str(), reason.c_str());
  std::fflush(stderr);
}

std::string Progress::pad(const std::string& s) const {
  // Columns: byte width, so the two bytes of '└' beyond its one column are given back.
  size_t extra = s.find("└") == std::string::npos ? 0 : 2;
  return s + std::string(id_width_ + extra > s.size() ? id_width_ + extra - s.size() : 0, ' ');
}

std::string Progress::prefix() const {
  std::string i = std::to_string(index_), t = std::to_string(total_);
  return "[" + std::string(t.size() - std::min(t.size(), i.size()), ' ') + i + "/" + t + "]";
}

void Progress::draw(double elapsed) {
  last_draw_ = elapsed;
  const bool control = id_.rfind("└", 0) == 0;
  std::fprintf(stderr, "\r\033[K%s %s  running %8s",
               (control ? std::string(prefix().size(), ' ') : prefix()).c_str(), pad(id_).c_str(),
               harness::format_duration(elapsed).c_str());
  std::fflush(stderr);
}

}  // namespace popper::cli
