#!/usr/bin/env bash
# Configures and builds Popper into build/ (Release, -O3). Extra arguments go to CMake:
#   scripts/build.sh -DPOPPER_NATIVE=ON
# $POPPER_BUILD_DIR picks the tree; $POPPER_BUILD_TARGETS (space-separated) builds only those.
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
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@"
elif (($# > 0)); then
  cmake "$build_dir" "$@"
fi
read -ra targets <<<"${POPPER_BUILD_TARGETS:-}"
cmake --build "$build_dir" -j "$(nproc)" ${targets[@]+--target "${targets[@]}"}
