#!/usr/bin/env bash
# The falsifiers under sanitizers, through CTest with the main suite's labels. Any report fails.
#   address (default): EVERY falsifier under AddressSanitizer + UndefinedBehaviorSanitizer
#     (build-asan): a read one byte out of bounds, a leak or a signed overflow fails here even
#     when it happens not to crash. This is the suite's only CTest run (scripts/test.sh); the
#     Release tree serves `popper run` and the benchmarks.
#   thread: the threaded parts under ThreadSanitizer (build-tsan): the thread pool (core_test),
#     the server's slots, queue and SIGTERM drain (serve_*), the runner's child processes,
#     time-outs and interrupts (harness_runner_test) and the CUDA emulation's fibers
#     (cuda_backend_emu_test). Only those are built.
# Each tree is its own build (the runtimes cannot share one): -O1 with line tables (reports give
# file:line), DCHECKs on, unity builds (the heavy headers are parsed once per batch), no
# benchmarks and no CUDA (nothing here runs on a GPU).
#
# Usage: scripts/test-sanitize.sh [address|thread] [ctest arguments...]
#   build dirs: build-asan, build-tsan (or $POPPER_ASAN_BUILD_DIR, $POPPER_TSAN_BUILD_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-address}
(($# > 0)) && shift
supp=$root/scripts/sanitizers

# Bounded: model-heavy tests that take minutes under a sanitizer, each still run in full
# elsewhere in scripts/test.sh. Every falsifier binary keeps tests that run its code here.
# The CUDA emulation's decodes (recorded CudaGraphs steps, end-to-end), big kernels and a test
# that fills the emulated device's memory (minutes each: 170 CPU-s and more for CudaGraphs under
# ASan): the small cases run the same fiber machine, kernels and backend code. popper run runs
# the rest in Release (contracts/cuda-backend-parity-v1.yaml), scripts/test.sh the end-to-end
# decodes. A grid runs on one thread, so TSan loses no race there.
emulated_big='^emulated\.(CudaOps\.(Attention|MoeRouting)|CudaErrors\.SessionBuffersTooBig|CudaGraphs\.|TinyModels/CudaEndToEnd)'

case $mode in
  address)
    build=${POPPER_ASAN_BUILD_DIR:-$root/build-asan}
    falsifiers=()  # all
    bounded_tests=(
      # Whole held-out corpora per quantised file; one KL case runs popper quantize, perplexity
      # and the judge's inputs; popper run runs all (contracts/quantization-quality-v1.yaml).
      '^Trained/QuantQuality\.(Kl[^/]*/(qwen3moe_q4_k_m|qwen3_)|AccuracyDrop)' '^QuantQualityJudge\.'
      # The task corpus through popper bench / every transformers task: the Control case and the
      # qwen3moe reference run the same code; popper run runs both in full.
      '^ServeBench\.ModelAnswersTheHeldOutTasks' '^Trained/TransformersReference\..*trained_qwen3_bf16'
      "$emulated_big")
    # Leaks too; UBSan halts on its first finding. The child processes the harness falsifiers
    # start (popper, the fixtures) inherit these and are checked the same way.
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$supp/lsan.supp
    # popper generate on 5 held-out tasks a family, not all 300 (a minute under ASan): the same
    # code path; popper run plays the whole corpus (contracts/qwen3-moe-forward-v1.yaml V1_009).
    export POPPER_TASKS_PER_FAMILY=5
    ;;
  thread)
    build=${POPPER_TSAN_BUILD_DIR:-$root/build-tsan}
    falsifiers=(core_test serve_unit_test serve_dispatch_test serve_api_test serve_load_test
                serve_abuse_test serve_bounds_test serve_parallel_stream_test harness_runner_test
                cuda_backend_emu_test)
    # TSan makes every fiber switch a synchronisation: the larger matmuls take a minute too;
    # ASan runs them.
    # httplib is not instrumented: scripts/sanitizers/tsan.supp says what that costs.
    bounded_tests=("$emulated_big" '^emulated\.Types/QuantMatmulParity\..*, (37|100)\)$')
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ;;
  *)
    echo "usage: scripts/test-sanitize.sh [address|thread] [ctest arguments...]" >&2
    exit 2
    ;;
esac

list=$(IFS=';'; echo "${falsifiers[*]}")
bounded=$(IFS='|'; echo "${bounded_tests[*]}")
POPPER_BUILD_DIR=$build POPPER_BUILD_TARGETS="${falsifiers[*]}" bash "$root/scripts/build.sh" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DPOPPER_SANITIZE="$mode" -DCMAKE_UNITY_BUILD=ON \
  -DPOPPER_BUILD_BENCHMARKS=OFF -DPOPPER_CUDA=OFF -DPOPPER_FALSIFIERS="$list"
# -LE long: the soaks (10,000 requests, a resident-memory bound) run in Release (scripts/test.sh).
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600 -E "$bounded" -LE long "$@"
