#!/usr/bin/env bash
# The file-parsing falsifiers under AddressSanitizer + UndefinedBehaviorSanitizer: the GGUF
# round trips and corruption suite (a read one byte out of bounds fails here even when it
# happens not to crash) and engine/core. Runs in CI after the main suite; kept to the targets
# that parse untrusted bytes so it stays fast.
#
# Usage: scripts/test-sanitize.sh            (build dir: build-asan, or $POPPER_ASAN_BUILD_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${POPPER_ASAN_BUILD_DIR:-$root/build-asan}
targets=(core_test gguf_test gguf_corruption_test)
jobs=${POPPER_JOBS:-$(nproc)}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPOPPER_SANITIZE=ON -DPOPPER_BUILD_BENCHMARKS=OFF >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]}"

# Any report is a failure: leaks too, and UBSan halts on its first finding.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  echo "== $t (ASan+UBSan)"
  start=$(date +%s%N)
  "$build/falsifiers/$t" --gtest_brief=1
  echo "== $t passed in $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
