#!/usr/bin/env bash
# The whole test suite: install dependencies, build, run every falsifier with CTest.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir "${POPPER_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" --timeout 600
