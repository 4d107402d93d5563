#!/usr/bin/env bash
# The whole test suite — the README's test command, and all that .ci/run calls:
#   1. install dependencies (Debian packages, idempotent) and build (Release, -O3);
#   2. every falsifier through CTest;
#   3. the parsers of untrusted bytes again under ASan+UBSan (scripts/test-sanitize.sh);
#   4. the contracts themselves: popper validate, popper run (writes evidence/) and popper gate.
#      The gate fails on any falsified or errored claim. Items this machine cannot decide — GPU
#      items without a GPU, benchmarks with no threshold for the CI profile — are inconclusive:
#      listed by the gate, never counted as survived, and not a CI failure (--allow-inconclusive).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${POPPER_BUILD_DIR:-$root/build}
export POPPER_BUILD_DIR=$build

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh
step "build ($build)"
bash scripts/build.sh
step "falsifiers (ctest)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600
step "sanitizers (ASan+UBSan on the GGUF parser)"
bash scripts/test-sanitize.sh
step "contracts: validate, run, gate"
popper="$build/harness/popper"
"$popper" validate
"$popper" run
"$popper" gate --allow-inconclusive --junit "$build/popper-junit.xml" --markdown "$build/popper-gate.md"
