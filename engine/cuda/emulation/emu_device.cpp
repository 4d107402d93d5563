// The CPU emulation's stand-in for engine/cuda/device.cu (see cuda_emu.h): the same API over host
// memory, one synchronous "stream", graphs as recorded lists of launches, a fixed memory size so
// out-of-memory paths can be exercised, and cuBLAS SGEMM as a plain loop.
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/cuda/common.cuh"
#include "engine/cuda/cuda_ops.h"

namespace popper::cuda {
namespace {

// The emulated device's memory: enough for the tiny models and the parity tests, small enough
// that a test can ask for more than there is.
constexpr uint64_t kDeviceBytes = uint64_t(8) << 30;
constexpr size_t kAlignment = 256;  // cudaMalloc's

struct Graph {
  std::vector<std::function<void()>> steps;
};

struct Device {
  std::mutex mu;
  std::map<void*, size_t> allocations;
  uint64_t used = 0;
  bool initialised = false;
  Graph* capturing = nullptr;  // non-null between begin_capture and end_capture
};

// Never destroyed: owners with static storage (a test's cached model and its weights on the
// device) free their memory at exit, possibly after a function-local static would be gone.
Device& device() {
  static Device* const d = new Device();
  return *d;
}

void check_not_capturing(const char* what) {
  POPPER_CHECK(device().capturing == nullptr, "CUDA emulation: ", what,
               " while a graph is being captured (illegal on a GPU: the capture would be invalidated)");
}

}  // namespace

cudaStream_t stream() { return nullptr; }
cublasHandle_t cublas() { return nullptr; }

Result<DeviceInfo> init() {
  device().initialised = true;
  return device_info();
}

DeviceInfo device_info() {
  DeviceInfo info;
  info.name = "CPU emulation of the CUDA layer";
  info.cc_major = 9;
  info.cc_minor = 0;
  info.n_sm = 1;
  info.total_bytes = kDeviceBytes;
  const std::lock_guard<std::mutex> lock(device().mu);
  info.free_bytes = kDeviceBytes - device().used;
  return info;
}

Result<void*> alloc(size_t bytes) {
  check_not_capturing("cudaMalloc");
  if (bytes == 0) bytes = 1;
  Device& d = device();
  const std::lock_guard<std::mutex> lock(d.mu);
  if (bytes > kDeviceBytes - d.used) {
    return make_error("CUDA out of memory: need ", bytes, " bytes, ", kDeviceBytes - d.used, " free of ",
                      kDeviceBytes, " (emulated device)");
  }
  void* p = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  POPPER_CHECK(p != nullptr, "CUDA emulation: host allocation of ", bytes, " bytes failed");
  d.allocations[p] = bytes;
  d.used += bytes;
  return p;
}

void free(void* p) {
  if (p == nullptr) return;
  check_not_capturing("cudaFree");
  Device& d = device();
  const std::lock_guard<std::mutex> lock(d.mu);
  const auto it = d.allocations.find(p);
  POPPER_CHECK(it != d.allocations.end(), "CUDA emulation: free of a pointer that is not a device allocation");
  d.used -= it->second;
  d.allocations.erase(it);
  std::free(p);
}

void upload(void* dst, const void* src, size_t bytes) {
  check_not_capturing("a host-to-device copy");
  if (bytes != 0) std::memcpy(dst, src, bytes);
}

void download(void* dst, const void* src, size_t bytes) {
  check_not_capturing("a device-to-host copy");
  if (bytes != 0) std::memcpy(dst, src, bytes);
}

void memset_zero(void* dst, size_t bytes) {
  emu::launch(1, 1, [dst, bytes] { std::memset(dst, 0, bytes); });
}

void synchronize() { check_not_capturing("cudaStreamSynchronize"); }

void* event_create() { return new std::chrono::steady_clock::time_point(); }
void event_destroy(void* event) { delete static_cast<std::chrono::steady_clock::time_point*>(event); }
void event_record(void* event) {
  auto* t = static_cast<std::chrono::steady_clock::time_point*>(event);
  emu::launch(1, 1, [t] { *t = std::chrono::steady_clock::now(); });
}
float event_elapsed_ms(void* start, void* stop) {
  const auto a = *static_cast<std::chrono::steady_clock::time_point*>(start);
  const auto b = *static_cast<std::chrono::steady_clock::time_point*>(stop);
  return std::chrono::duration<float, std::milli>(b - a).count();
}

void begin_capture() {
  POPPER_CHECK(device().capturing == nullptr, "CUDA emulation: nested capture");
  device().capturing = new Graph();
}

Result<void*> end_capture() {
  Graph* g = device().capturing;
  POPPER_CHECK(g != nullptr, "CUDA emulation: end_capture without begin_capture");
  device().capturing = nullptr;
  return static_cast<void*>(g);
}

void launch_graph(void* graph) {
  check_not_capturing("a graph launch");
  for (const auto& step : static_cast<Graph*>(graph)->steps) step();
}

void destroy_graph(void* graph) { delete static_cast<Graph*>(graph); }

}  // namespace popper::cuda

namespace popper::emu {

void launch(Dim3 grid, Dim3 block, std::function<void()> body) {
  if (cuda::Graph* g = cuda::device().capturing) {
    g->steps.push_back([grid, block, body = std::move(body)] { run_grid(grid, block, body); });
    return;
  }
  run_grid(grid, block, body);
}

}  // namespace popper::emu

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  popper::emu::launch(1, 1, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}

cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
  const float al = *alpha, be = *beta;
  popper::emu::launch(1, 1, [=] {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (int p = 0; p < k; ++p) {
          const float av = transa == CUBLAS_OP_N ? a[i + size_t(p) * lda] : a[p + size_t(i) * lda];
          const float bv = transb == CUBLAS_OP_N ? b[p + size_t(j) * ldb] : b[j + size_t(p) * ldb];
          acc += av * bv;
        }
        float& out = c[i + size_t(j) * ldc];
        out = be == 0.0f ? al * acc : al * acc + be * out;
      }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}
