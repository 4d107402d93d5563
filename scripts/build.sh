#!/usr/bin/env bash
# Configures and builds Popper into build/ (Release, -O3). Extra arguments go to CMake:
#   scripts/build.sh -DPOPPER_NATIVE=ON
# $POPPER_BUILD_DIR picks the tree; $POPPER_BUILD_TARGETS (space-separated) builds only those.
# Unity builds (batches of 8 sources, CMake's default) by default: the heavy headers (json, yaml,
# httplib, CLI11, gtest) are parsed once a batch, a cold build takes ~180 s instead of ~235 s on
# 2 cores. Sources with their own flags (the *_avx2/*_avx512 kernels, the -ffp-contract=off files)
# are never batched (CMake leaves out any source with COMPILE_OPTIONS). -DCMAKE_UNITY_BUILD=OFF
# gives one object a source, for work on one file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${POPPER_BUILD_DIR:-$root/build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# ccache, when installed, makes rebuilds across checkouts cheap; CI builds without it.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=ON \
    "${launcher[@]}" "$@"
elif (($# > 0)); then
  cmake "$build_dir" "$@"
fi
read -ra targets <<<"${POPPER_BUILD_TARGETS:-}"
cmake --build "$build_dir" -j "$(nproc)" ${targets[@]+--target "${targets[@]}"}
