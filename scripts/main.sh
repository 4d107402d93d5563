#!/usr/bin/env bash
# The main job — the README's first command:
#   install dependencies, build, make the embedded default model, run every contract with its
#   negative control (popper run --controls), write evidence and a report, and print where they are.
# Exit code: popper gate's (0 no required claim falsified or errored, 1 one was, 2 bad input). Idempotent: a second run reuses the build and the model cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${POPPER_BUILD_DIR:-$root/build}
export POPPER_BUILD_DIR=$build
export POPPER_MODEL_CACHE=${POPPER_MODEL_CACHE:-$root/.cache/models}
popper="$build/harness/popper"

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh
step "build ($build)"
mkdir -p "$build"
build_log="$build/main-build.log"
bash scripts/build.sh >"$build_log" 2>&1 || { tail -40 "$build_log"; exit 2; }
echo "built $popper (log: $build_log)"

step "embedded default model"
# The model a newcomer generates and serves with; `popper run` keeps its own cache of the
# models contracts name ($POPPER_MODEL_CACHE).
mkdir -p models
default_model="models/tiny-qwen3moe-q4_k_m.gguf"
if [[ ! -f "$default_model" ]]; then
  "$popper" synth --arch qwen3moe --preset tiny --quant q4_k_m -o "$default_model"
fi
"$popper" inspect "$default_model" | sed -n '1,5p'

step "contracts"
"$popper" validate
set +e
"$popper" run --controls
run_status=$?
set -e

step "report"
"$popper" report -o reports
set +e
# Claims this machine cannot decide (GPU items without a GPU, benchmarks without a threshold
# for this profile) are listed as inconclusive and do not fail the job; falsified ones do, and so
# do unfalsifiable ones (their check survived the control) and survived ones with no control run.
"$popper" gate --allow-inconclusive --require-controls --markdown reports/gate.md
gate_status=$?
set -e
printf '\nevidence: %s\nreport:   %s\n' "$root/evidence" "$root/reports/index.html"
exit $(( gate_status != 0 ? gate_status : run_status ))
