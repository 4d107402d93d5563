// The live view of `popper run` on stderr: one line per item as it finishes,
//   [2/7] FALSIFY-..._003  survived      1.2 s  reason
// and on a terminal, until then, the running item with its elapsed time; with --controls, each
// item's control on the line below it.
#pragma once

#include <cstddef>
#include <string>

#include "harness/run/runner.h"

namespace popper::cli {

class Progress {
 public:
  Progress(int total, size_t id_width);

  void start(const std::string& id);
  void tick(double elapsed);
  void finish(const harness::ItemResult& r);
  // An item's control, on the lines below the item's:
  //       └ control (kv_stale_position)  falsified   0.4 s  1 of 3 tests failed: ...
  void start_control(const harness::Item& item);
  void finish_control(const harness::ControlResult& c);

 private:
  std::string prefix() const;
  void draw(double elapsed);
  std::string pad(const std::string& s) const;  // left-aligned in the ID column
  void print_line(const std::string& head, const std::string& label, double seconds,
                  const std::string& reason);

  int total_;
  size_t id_width_;
  bool tty_, color_;
  int index_ = 0;
  std::string id_;   // what the running line shows: an ID, or "└ control (faults)"
  std::string pad_;  // blank prefix of a control line
  double last_draw_ = -1;
};

}  // namespace popper::cli
