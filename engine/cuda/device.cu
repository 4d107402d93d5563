// Device selection, the stream and cuBLAS handle, memory and copies.
#include <mutex>

#include "engine/cuda/common.cuh"
#include "engine/cuda/cuda_ops.h"

namespace popper::cuda {
namespace {

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  DeviceInfo info;
};

Context* g_context = nullptr;
std::mutex g_mutex;

}  // namespace

cudaStream_t stream() {
  POPPER_CHECK(g_context != nullptr, "cuda::init() first");
  return g_context->stream;
}
cublasHandle_t cublas() {
  POPPER_CHECK(g_context != nullptr, "cuda::init() first");
  return g_context->cublas;
}

Result<DeviceInfo> init() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_context != nullptr) return device_info();
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice) {
    return make_error("no CUDA device: no NVIDIA GPU with a driver new enough for this build answers (runtime: ",
                      cudaGetErrorString(err), ")");
  }
  if (err != cudaSuccess) return make_error("no CUDA device: ", cudaGetErrorString(err));
  if (n == 0) return make_error("no CUDA device: the runtime found 0 devices");
  if (cudaError_t e = cudaSetDevice(0); e != cudaSuccess) {
    return make_error("cannot use CUDA device 0: ", cudaGetErrorString(e));
  }
  cudaDeviceProp prop{};
  POPPER_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  auto* ctx = new Context();
  POPPER_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
  if (cublasStatus_t s = cublasCreate(&ctx->cublas); s != CUBLAS_STATUS_SUCCESS) {
    return make_error("cuBLAS could not start: ", cublasGetStatusString(s));
  }
  POPPER_CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
  // Plain FP32 arithmetic (no TF32): parity with the CPU reference is the point.
  POPPER_CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, CUBLAS_PEDANTIC_MATH));
  ctx->info.name = prop.name;
  ctx->info.cc_major = prop.major;
  ctx->info.cc_minor = prop.minor;
  ctx->info.n_sm = prop.multiProcessorCount;
  int mem_clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  // Double data rate: two transfers per clock.
  ctx->info.peak_gb_per_s = 2.0 * double(mem_clock_khz) * 1e3 * double(bus_bits / 8) / 1e9;
  g_context = ctx;
  return device_info();
}

DeviceInfo device_info() {
  POPPER_CHECK(g_context != nullptr, "cuda::init() first");
  DeviceInfo info = g_context->info;
  size_t free_b = 0, total_b = 0;
  POPPER_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  info.free_bytes = free_b;
  info.total_bytes = total_b;
  return info;
}

Result<void*> alloc(size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) bytes = 1;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return make_error("CUDA out of memory: need ", bytes, " bytes, ", free_b, " free of ", total_b, " (",
                      cudaGetErrorString(err), ")");
  }
  return p;
}

void free(void* p) {
  if (p == nullptr) return;
  const cudaError_t err = cudaFree(p);
  // At process exit the runtime may unload before a static owner frees: nothing left to free.
  if (err == cudaErrorCudartUnloading) return;
  POPPER_CUDA_CHECK(err);
}

void upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  POPPER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
  POPPER_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void download(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  POPPER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  POPPER_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void memset_zero(void* dst, size_t bytes) { POPPER_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream())); }

void synchronize() { POPPER_CUDA_CHECK(cudaStreamSynchronize(stream())); }

void* event_create() {
  cudaEvent_t e = nullptr;
  POPPER_CUDA_CHECK(cudaEventCreate(&e));
  return static_cast<void*>(e);
}

void event_destroy(void* event) {
  if (event == nullptr) return;
  const cudaError_t err = cudaEventDestroy(static_cast<cudaEvent_t>(event));
  if (err == cudaErrorCudartUnloading) return;
  POPPER_CUDA_CHECK(err);
}

void event_record(void* event) { POPPER_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), stream())); }

float event_elapsed_ms(void* start, void* stop) {
  POPPER_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop)));
  float ms = 0;
  POPPER_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(stop)));
  return ms;
}

void begin_capture() {
  // Thread-local mode: another thread's unrelated CUDA calls do not invalidate this capture.
  POPPER_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
}

Result<void*> end_capture() {
  cudaGraph_t graph = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream(), &graph);
  if (err != cudaSuccess) {
    cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
    if (graph != nullptr) cudaGraphDestroy(graph);
    return make_error("CUDA graph capture failed: ", cudaGetErrorString(err));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) {
    cudaGetLastError();
    return make_error("CUDA graph instantiation failed: ", cudaGetErrorString(inst));
  }
  return static_cast<void*>(exec);
}

void launch_graph(void* graph) { POPPER_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream())); }

void destroy_graph(void* graph) {
  if (graph == nullptr) return;
  const cudaError_t err = cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
  if (err == cudaErrorCudartUnloading) return;
  POPPER_CUDA_CHECK(err);
}

}  // namespace popper::cuda
