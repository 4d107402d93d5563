// The live view of `popper run` on stderr: one line per item as it finishes,
//   [2/7] FALSIFY-..._003  survived      1.2 s  reason
// and on a terminal, until then, the running item with its elapsed time.
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

 private:
  std::string prefix() const;
  void draw(double elapsed);

  int total_;
  size_t id_width_;
  bool tty_, color_;
  int index_ = 0;
  std::string id_;
  double last_draw_ = -1;
};

}  // namespace popper::cli
