#include "harness/cli/progress_line.h"

#include <unistd.h>

#include <cstdio>

namespace popper::cli {

ProgressLine::ProgressLine(bool enabled)
    : enabled_(enabled), tty_(::isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

double ProgressLine::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressLine::update(const std::string& text, bool done) {
  if (!enabled_) return;
  const double t = elapsed();
  if (!done && t - last_ < (tty_ ? 0.25 : 10.0)) return;
  last_ = t;
  if (tty_) {
    // \033[K clears what a longer previous line left behind.
    std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), done ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

}  // namespace popper::cli
