#!/usr/bin/env bash
# Coverage-guided fuzzing of the GGUF reader and writer with libFuzzer + ASan + UBSan
# (falsifiers/fuzz/gguf_fuzz.cpp). Needs clang with libFuzzer; without it the script says so
# and exits 0, because the project's toolchain is GCC and fuzzing is an extra, not a gate.
#
# Usage: scripts/fuzz-gguf.sh [SECONDS]     (default 60; corpus and binaries in build-fuzz/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out=${POPPER_FUZZ_DIR:-$root/build-fuzz}
cxx=${POPPER_FUZZ_CXX:-clang++}

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz-gguf: $cxx not found; skipping (install clang to fuzz)"
  exit 0
fi
mkdir -p "$out/corpus"
probe='extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }'
if ! echo "$probe" | "$cxx" -x c++ -fsanitize=fuzzer - -o "$out/probe" >/dev/null 2>&1; then
  echo "fuzz-gguf: $cxx cannot link libFuzzer (-fsanitize=fuzzer); skipping"
  exit 0
fi

# Only the layers the parser uses: no OpenSSL, threads or the rest of the engine.
srcs=("$root/engine/core/ggml_type.cpp" "$root/engine/gguf/gguf_value.cpp"
      "$root/engine/gguf/gguf_reader.cpp" "$root/engine/gguf/gguf_writer.cpp")
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I"$root")
"$cxx" "${flags[@]}" -DPOPPER_FUZZ_SEED_MAIN "$root/falsifiers/fuzz/gguf_fuzz.cpp" "${srcs[@]}" \
  -o "$out/gguf_fuzz_seeds"
"$cxx" "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "$root/falsifiers/fuzz/gguf_fuzz.cpp" "${srcs[@]}" -o "$out/gguf_fuzz"
"$out/gguf_fuzz_seeds" "$out/corpus"
echo "fuzz-gguf: fuzzing for ${secs} s (corpus: $out/corpus)"
"$out/gguf_fuzz" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 "$out/corpus"
