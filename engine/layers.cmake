# Engine layers added after the foundation (included by engine/CMakeLists.txt).
popper_engine_layer(popper_tokenizer tokenizer DEPS popper_core popper_gguf)
target_link_libraries(popper_engine INTERFACE popper_tokenizer)
# The synthetic model builder writes a real tokenizer (engine/synth/vocab.cpp).
target_link_libraries(popper_synth PUBLIC popper_tokenizer)
popper_engine_layer(popper_model model DEPS popper_core popper_gguf popper_quant popper_cpu)
target_link_libraries(popper_engine INTERFACE popper_model)
# The CUDA backend, all of it in engine/cuda: the kernels (*.cu, the only sources that include
# CUDA headers) and the Backend implementation on them (*.cpp, plain C++ on cuda_ops.h, which
# depends on engine/model's backend interface). It registers itself with engine/model's backend
# factory at start-up, so engine/model is compiled once and knows nothing of CUDA: a binary has the
# CUDA backend exactly when it links popper_cuda. Nothing references the registration, so the
# archive is linked whole. POPPER_HAVE_CUDA is for the code that reaches CudaBackend's extras
# (benchmarks, tests); it is an interface definition, so the kernels compile the same either way.
if(POPPER_CUDA)
  file(GLOB _popper_cuda_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cu
       ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cpp)
  add_library(popper_cuda STATIC ${_popper_cuda_srcs})
  target_include_directories(popper_cuda PUBLIC ${POPPER_ROOT})
  target_link_libraries(popper_cuda PUBLIC popper_model popper_core popper_quant PRIVATE CUDA::cublas
                                           CUDA::cudart_static)
  target_compile_options(popper_cuda PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  target_compile_definitions(popper_cuda INTERFACE POPPER_HAVE_CUDA=1)
  set_target_properties(popper_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                               CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  target_link_libraries(popper_engine INTERFACE "$<LINK_LIBRARY:WHOLE_ARCHIVE,popper_cuda>")
endif()
# The CUDA layer's CPU emulation, for tests (engine/cuda/emulation/cuda_emu.h): the same .cu
# sources (through .cpp wrappers, compiled as C++ against stand-in CUDA headers) with
# emu_device.cpp in place of device.cu, and the same backend sources on top, so the CUDA backend's
# falsifiers run on every machine against the one engine/model library. Never linked into popper.
if(POPPER_BUILD_TESTS AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  file(GLOB _popper_emu_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emulation/*.cpp
       ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cpp)
  add_library(popper_cuda_emu STATIC ${_popper_emu_srcs})
  target_include_directories(popper_cuda_emu BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cuda/emulation/include)
  target_include_directories(popper_cuda_emu PUBLIC ${POPPER_ROOT})
  # The _rn intrinsics stand for single IEEE operations: no fused multiply-adds. A misaligned
  # word access faults on a GPU but not on x86: UBSan's alignment check makes it fault here too.
  target_compile_options(popper_cuda_emu PRIVATE -ffp-contract=off -fsanitize=alignment
                                                 -fno-sanitize-recover=alignment)
  target_link_options(popper_cuda_emu PUBLIC -fsanitize=alignment)
  target_compile_definitions(popper_cuda_emu INTERFACE POPPER_HAVE_CUDA=1)
  target_link_libraries(popper_cuda_emu PUBLIC popper_model popper_core popper_quant)
endif()
popper_engine_layer(popper_serve serve DEPS popper_model popper_tokenizer PkgConfig::HTTPLIB nlohmann_json::nlohmann_json)
target_link_libraries(popper_engine INTERFACE popper_serve)
