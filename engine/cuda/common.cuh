// Shared by engine/cuda/*.cu only (CUDA headers stay inside this layer): the stream, error
// checks, and the ggml block layouts as device code reads them.
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/core/result.h"
#include "engine/quant/blocks.h"

namespace popper::cuda {

// A failed launch or copy is a bug (shapes are checked before): abort with file:line.
#define POPPER_CUDA_CHECK(expr)                                                                 \
  do {                                                                                          \
    const cudaError_t popper_err_ = (expr);                                                     \
    if (popper_err_ != cudaSuccess)                                                             \
      ::popper::check_failed(__FILE__, __LINE__, #expr, cudaGetErrorString(popper_err_));      \
  } while (0)
#define POPPER_CUBLAS_CHECK(expr)                                                               \
  do {                                                                                          \
    const cublasStatus_t popper_st_ = (expr);                                                   \
    if (popper_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::popper::check_failed(__FILE__, __LINE__, #expr, cublasGetStatusString(popper_st_));    \
  } while (0)
#define POPPER_CUDA_LAUNCHED() POPPER_CUDA_CHECK(cudaGetLastError())

// Every kernel launch, on the layer's stream: POPPER_LAUNCH(grid, block, kernel)(args...). The
// kernel comes last so template arguments may hold commas. One spelling for nvcc and for the
// CPU emulation of this layer (falsifiers/cuda_emu), which defines its own.
#ifndef POPPER_LAUNCH
#define POPPER_LAUNCH(grid, block, ...) __VA_ARGS__<<<(grid), (block), 0, ::popper::cuda::stream()>>>
#endif

cudaStream_t stream();
cublasHandle_t cublas();

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// ggml's get_scale_min_k4 on device.
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

}  // namespace popper::cuda
