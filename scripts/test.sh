#!/usr/bin/env bash
# The whole test suite — the README's test command, and all that .ci/run calls:
#   1. install dependencies (Debian packages, idempotent) and build (Release, -O3) what popper
#      run needs: popper, the targets the contracts bind, the benchmarks (contract_targets,
#      cmake/ContractTargets.cmake);
#   2. every falsifier through CTest, built with ASan+UBSan (scripts/test-sanitize.sh address):
#      one CTest run that checks both the claims and the memory safety of reaching them; the
#      Release tree is for popper run (below) and the benchmarks;
#   3. the threaded parts (thread pool, server, runner, CUDA emulation's fibers) under TSan
#      (scripts/test-sanitize.sh thread), and in Release what the sanitizer trees leave out:
#      checks a sanitizer cannot judge (resident memory under load and the soak,
#      falsifiers/sanitizer_util.h) and the emulated end-to-end decodes popper run does not run
#      (minutes under a sanitizer); every libFuzzer target for a few seconds (scripts/fuzz.sh,
#      POPPER_FUZZ_SECONDS, default 5; skipped with a message where clang has no libFuzzer);
#   4. the contracts themselves: popper validate, popper run --controls (writes evidence/) and
#      popper gate. Every item that survives runs again under its negative control (its
#      `control:` faults, docs/faults.md), which must falsify it. The gate fails on any falsified
#      or errored claim, on an unfalsifiable one (its check survived the control), and on a
#      survived one whose control did not run (--require-controls). Items this machine cannot
#      decide — GPU items without a GPU, benchmarks with no threshold for the CI profile — are
#      inconclusive: listed by the gate, never counted as survived, and not a CI failure
#      (--allow-inconclusive); their controls are not run either (nothing survived to guard).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${POPPER_BUILD_DIR:-$root/build}
export POPPER_BUILD_DIR=$build

# Each step's header says how long the suite has run so far (CI's budget is 30 minutes).
step() { printf '\n== %s (at %d s)\n' "$*" "$SECONDS"; }

step "dependencies"
bash scripts/install-deps.sh
step "build ($build: contract_targets)"
# "<falsifier> <gtest filter>" for the Release step below.
unsanitized=("serve_load_test *" "serve_soak_test *" "cuda_backend_emu_test TinyModels/CudaEndToEnd.*")
POPPER_BUILD_TARGETS="contract_targets serve_load_test serve_soak_test" bash scripts/build.sh
step "falsifiers (ctest, ASan+UBSan build)"
bash scripts/test-sanitize.sh address
step "threaded falsifiers (ctest, TSan build)"
bash scripts/test-sanitize.sh thread
step "fuzz targets (libFuzzer + ASan + UBSan, ${POPPER_FUZZ_SECONDS:-5} s each)"
# A short bounded run of every target from the committed seeds and regressions; the long
# campaigns are scripts/fuzz.sh run by hand (docs/fuzzing.md). A crash fails CI.
bash scripts/fuzz.sh "${POPPER_FUZZ_SECONDS:-5}"
step "falsifiers the sanitizer trees leave out (Release)"
for u in "${unsanitized[@]}"; do
  read -r exe filter <<<"$u"
  "$build/falsifiers/$exe" --gtest_brief=1 --gtest_filter="$filter"
done
step "contracts: validate, run, gate"
popper="$build/harness/popper"
"$popper" validate
# popper run exits 1 when any item is falsified, optional ones included; whether that fails CI
# is the gate's decision (required items only), so only a harness failure (2) or an interrupt
# (130) stops here.
run_status=0
"$popper" run --controls || run_status=$?
if ((run_status > 1)); then exit "$run_status"; fi
"$popper" gate --allow-inconclusive --require-controls --junit "$build/popper-junit.xml" --markdown "$build/popper-gate.md"
printf '\n== test suite passed in %d s\n' "$SECONDS"
