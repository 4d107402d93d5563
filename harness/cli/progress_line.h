// One progress line on stderr for the long-running commands (synth, quantize, perplexity).
//
// On a terminal the line is redrawn in place at most every 0.25 s; in a log (stderr not a
// terminal) a line is printed at most every 10 s, so a CI log stays short. The final update
// always prints and ends the line.
#pragma once

#include <chrono>
#include <string>

namespace popper::cli {

class ProgressLine {
 public:
  // enabled false (--quiet): update() prints nothing.
  explicit ProgressLine(bool enabled);

  // `text` without a newline; done: the last update (always printed, ends the line).
  void update(const std::string& text, bool done);
  // Seconds since construction.
  double elapsed() const;

 private:
  bool enabled_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  double last_ = 0;  // the first line waits one interval too: short runs print only the last
  size_t last_width_ = 0;
};

}  // namespace popper::cli
