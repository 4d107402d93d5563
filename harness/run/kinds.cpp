#include "harness/run/kinds.h"

namespace popper::harness {

const KindStrategy& kind_strategy(BindingKind kind) {
  switch (kind) {
    case BindingKind::kGtest:
      return gtest_kind();
    case BindingKind::kBenchmark:
      return benchmark_kind();
    case BindingKind::kCommand:
      return command_kind();
  }
  return gtest_kind();
}

}  // namespace popper::harness
