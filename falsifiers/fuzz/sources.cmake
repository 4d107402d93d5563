# The fuzz targets' sources, shared by the libFuzzer binaries (falsifiers/fuzz/CMakeLists.txt,
# POPPER_FUZZ=ON) and the regression falsifier of the normal build (falsifiers.cmake).
# Each <name>_fuzz.cpp registers one target (fuzz_target.h); a new file is a new target.
set(POPPER_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
file(GLOB POPPER_FUZZ_TARGET_SOURCES CONFIGURE_DEPENDS ${POPPER_FUZZ_DIR}/*_fuzz.cpp)
set(POPPER_FUZZ_SUPPORT_SOURCES ${POPPER_FUZZ_DIR}/fuzz_target.cpp ${POPPER_FUZZ_DIR}/fuzz_archive.cpp)
