# Warnings for every target of ours, and the optional -march=native / sanitizer builds.
add_library(popper_warnings INTERFACE)
target_compile_options(popper_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)

if(POPPER_NATIVE)
  add_compile_options(-march=native)
endif()

# POPPER_SANITIZE (scripts/test-sanitize.sh): OFF, ON or address (ASan+UBSan), or
# thread (TSan). The two cannot share a build: each wants its own shadow memory.
string(TOLOWER "${POPPER_SANITIZE}" _popper_san)
if(_popper_san STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # Code that must tell TSan about what it cannot see (the CUDA emulation's fiber switches).
  add_compile_definitions(POPPER_TSAN=1)
elseif(POPPER_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(POPPER_ASAN=1)
endif()
# The fuzz build: coverage instrumentation (fuzzer-no-link) and ASan+UBSan on every library; only
# the fuzz binaries link libFuzzer itself (falsifiers/fuzz/CMakeLists.txt).
if(POPPER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "POPPER_FUZZ=ON needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Flags for the translation units that hold the AVX2+FMA kernels. Only those files get them,
# so one binary runs on any x86-64 and picks its path at run time (engine/core/cpu_features.h).
set(POPPER_AVX2_FLAGS -mavx2 -mfma -mf16c -mbmi2)
set(POPPER_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c -mbmi2)
