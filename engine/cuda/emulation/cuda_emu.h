// The CPU emulation of the CUDA layer (engine/cuda), for tests on machines without a GPU: the
// layer's .cu files compile as C++ against this header instead of the CUDA toolkit's, and
// emu_device.cpp replaces device.cu. Kernels run on the fiber machine of fibers.h; device memory
// is host memory; the stream is synchronous; a graph capture records launches and a graph launch
// replays them; cuBLAS SGEMM is a plain loop.
//
// What it checks: the kernels' indexing, synchronisation and reductions, and the CUDA backend's
// orchestration (device-resident steps, expert grouping, positions read from device memory,
// recorded steps), against the CPU backend with the parity falsifiers. What it cannot: the GPU's
// own arithmetic (host libm's expf / cosf stand in for the device's) and anything about speed.
// Built with -DPOPPER_CUDA_EMULATION=ON (and POPPER_CUDA OFF); never in a release binary.
#pragma once

#define POPPER_CUDA_EMULATION 1

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "engine/core/fp16.h"
#include "engine/cuda/emulation/fibers.h"

// --- language ---------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one at a time, so a function-static array is exactly one block's shared memory.
#define __shared__ static

using dim3 = popper::emu::Dim3;
#define threadIdx (::popper::emu::thread_idx())
#define blockIdx (::popper::emu::block_idx())
#define blockDim (::popper::emu::block_dim())
#define gridDim (::popper::emu::grid_dim())

inline void __syncthreads() { popper::emu::sync_threads(); }

template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T value, int lane_mask) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  const int lane = int(popper::emu::thread_idx().x % 32);  // blocks here are 1-D
  bits = popper::emu::warp_exchange(bits, lane ^ lane_mask);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

inline int atomicAdd(int* p, int v) {  // fibers switch only at barriers: a plain add is atomic
  const int old = *p;
  *p = v + old;
  return old;
}

template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}

struct int2 {
  int x, y;
};
inline int2 make_int2(int x, int y) { return int2{x, y}; }

// --- intrinsics -------------------------------------------------------------------------------
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += int(int8_t(uint32_t(a) >> (8 * i))) * int(int8_t(uint32_t(b) >> (8 * i)));
  return c;
}
inline int __vsubss4(int a, int b) {  // per byte, signed, saturating
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) {
    const int d = int(int8_t(uint32_t(a) >> (8 * i))) - int(int8_t(uint32_t(b) >> (8 * i)));
    out |= uint32_t(uint8_t(int8_t(std::clamp(d, -128, 127)))) << (8 * i);
  }
  return int(out);
}
// The _rn forms: one IEEE operation each (this file is compiled with -ffp-contract=off).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline int __float2int_rn(float x) { return int(std::nearbyint(x)); }  // default mode: nearest even
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }

struct __half {
  uint16_t bits;
};
inline float __half2float(__half h) { return popper::fp16_to_f32(h.bits); }
inline __half __float2half_rn(float f) { return __half{popper::f32_to_fp16(f)}; }
inline __half __ushort_as_half(uint16_t bits) { return __half{bits}; }
inline uint16_t __half_as_ushort(__half h) { return h.bits; }

// --- runtime ----------------------------------------------------------------------------------
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorCudartUnloading = 4 };
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
using cudaStream_t = struct popper_emu_stream*;
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };
// Queued like a launch: recorded while a graph is being captured.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);

using cublasHandle_t = struct popper_emu_cublas*;
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
inline const char* cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS"; }
// Column-major C = alpha * op(A) op(B) + beta * C, summed in order over k.
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
                           const float* beta, float* c, int ldc);

namespace popper::emu {

// Runs (or, while a graph is being captured, records) one grid.
void launch(Dim3 grid, Dim3 block, std::function<void()> body);

// POPPER_LAUNCH(grid, block, kernel)(args...): the arguments are converted to the kernel's
// parameter types and copied, as a launch copies them to the device.
template <class... P>
struct Launch {
  Dim3 grid, block;
  void (*kernel)(P...);
  template <class... A>
  void operator()(A&&... args) const {
    std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(std::forward<A>(args))...);
    launch(grid, block, [k = kernel, params] { std::apply(k, params); });
  }
};
template <class... P>
Launch(Dim3, Dim3, void (*)(P...)) -> Launch<P...>;

}  // namespace popper::emu

#define POPPER_LAUNCH(grid, block, ...) (::popper::emu::Launch{dim3(grid), dim3(block), &__VA_ARGS__})
