#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (falsifiers/fuzz, docs/fuzzing.md):
# builds the libFuzzer targets with clang, ASan and UBSan into build-fuzz/ (CMake, POPPER_FUZZ=ON)
# and runs each for SECONDS, one at a time, from a corpus seeded by the committed fixtures and
# seeds. Prints per target: seconds, executions, edges covered (libFuzzer's cov), features and
# crashes; exits 1 when any target crashed (the input is saved under build-fuzz/crashes/<target>/:
# fix the parser and commit the input under falsifiers/fuzz/regressions/<target>/).
# Needs clang with libFuzzer; without it the script says so and exits 0, because the project's
# toolchain is GCC and the committed inputs are replayed by fuzz_regression_test anyway.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default 60 s each, every target)
#   POPPER_FUZZ_JOBS   build parallelism (default: nproc)
#   POPPER_FUZZ_LOG    also append the per-target table to this file
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift $(($# > 0 ? 1 : 0))
build=${POPPER_FUZZ_DIR:-$root/build-fuzz}
cxx=${POPPER_FUZZ_CXX:-clang++}
cc=${POPPER_FUZZ_CC:-clang}
jobs=${POPPER_FUZZ_JOBS:-$(nproc)}

if ! command -v "$cxx" >/dev/null 2>&1 || ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz: $cxx not found; skipping (install clang to fuzz)"
  exit 0
fi
mkdir -p "$build"
probe='extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }'
if ! echo "$probe" | "$cxx" -x c++ -fsanitize=fuzzer - -o "$build/probe" >/dev/null 2>&1; then
  echo "fuzz: $cxx cannot link libFuzzer (-fsanitize=fuzzer); skipping"
  exit 0
fi

# -O1 without NDEBUG: assertions in the libraries (nlohmann's included) stay on while fuzzing.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
    -DPOPPER_FUZZ=ON -DPOPPER_BUILD_TESTS=OFF -DPOPPER_BUILD_BENCHMARKS=OFF -DPOPPER_CUDA=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DCMAKE_UNITY_BUILD=ON "${launcher[@]}" >/dev/null
fi
ninja -C "$build" -j "$jobs" popper_fuzz | grep -v '^\[' || true
[[ -x "$build/falsifiers/fuzz/popper_fuzz_seeds" ]] || { echo "fuzz: build failed"; exit 2; }
echo "fuzz: built in $(($(date +%s) - start)) s"

bin=$build/falsifiers/fuzz
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <("$bin/popper_fuzz_seeds" --list)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
crashed=0
table=$(printf '%-18s %8s %12s %8s %10s %8s\n' target seconds execs edges features crashes)
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  crashes=$build/crashes/$t
  mkdir -p "$corpus" "$crashes"
  "$bin/popper_fuzz_seeds" "$t" "$corpus"
  cp -n "$root/falsifiers/fuzz/seeds/$t/"* "$corpus/" 2>/dev/null || true
  cp -n "$root/falsifiers/fuzz/regressions/$t/"* "$corpus/" 2>/dev/null || true
  dict=()
  [[ -f "$root/falsifiers/fuzz/dict/$t.dict" ]] && dict=(-dict="$root/falsifiers/fuzz/dict/$t.dict")
  log=$build/logs/$t.log
  mkdir -p "$(dirname "$log")"
  marker=$build/logs/.$t.start
  touch "$marker"
  t0=$(date +%s)
  rc=0
  # -rss_limit_mb: a parser that balloons on a small input is a finding too.
  "$bin/${t}_fuzz" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=25 \
    -artifact_prefix="$crashes/" "${dict[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - t0))
  # The last status line ("#1234 DONE cov: 567 ft: 890 ...") and the final stats.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  feats=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  found=$(find "$crashes" -type f -newer "$marker" | wc -l)  # this run's, not earlier ones
  row=$(printf '%-18s %8s %12s %8s %10s %8s' "$t" "$elapsed" "${execs:-?}" "${edges:-?}" "${feats:-?}" "$found")
  echo "$row"
  table+=$'\n'"$row"
  if ((rc != 0 || found > 0)); then
    crashed=1
    echo "fuzz: $t failed (exit $rc): see $log, inputs in $crashes/"
    grep -m3 -E 'ERROR:|property violated|runtime error' "$log" || true
  fi
done
echo "$table"
[[ -n "${POPPER_FUZZ_LOG:-}" ]] && echo "$table" >>"$POPPER_FUZZ_LOG"
exit $crashed
