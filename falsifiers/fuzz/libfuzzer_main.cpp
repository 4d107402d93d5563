// libFuzzer's entry points for a binary that links exactly one fuzz target (fuzz_target.h).
#include <cstdio>
#include <cstdlib>

#include "falsifiers/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const popper::fuzz::FuzzTarget& target = [] {
    const auto& all = popper::fuzz::fuzz_targets();
    if (all.size() != 1) {
      std::fprintf(stderr, "fuzz: a libFuzzer binary must link one target, this one has %zu\n", all.size());
      std::abort();
    }
    return all[0];
  }();
  target.one_input(popper::fuzz::Bytes(data, size));
  return 0;
}
