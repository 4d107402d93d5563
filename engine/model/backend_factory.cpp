#include "engine/model/backend_factory.h"

#include "engine/core/faults.h"
#include "engine/model/cpu_backend.h"

namespace popper {
namespace {

// The registered CUDA factory (null: none linked in). A function-local static, so a registration
// during another library's static initialisation finds it constructed.
BackendFactory& cuda_factory() {
  static BackendFactory factory = nullptr;
  return factory;
}

Result<std::unique_ptr<Backend>> make_cuda(int n_threads, const Model* model) {
  if (cuda_factory() == nullptr) {
    return make_error(
        "the CUDA backend is not built into this binary (configure with -DPOPPER_CUDA=ON and nvcc)");
  }
  auto b = cuda_factory()(n_threads);
  if (!b.ok()) return b.error();
  if (model != nullptr) {
    auto w = model->weights_on(*b.value());
    if (!w.ok()) return w.error();
  }
  return b;
}

}  // namespace

Result<BackendKind> parse_backend_kind(const std::string& name) {
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  if (name == "auto") return BackendKind::kAuto;
  return make_error("--backend: want cpu, cuda or auto, got '", name, "'");
}

bool cuda_backend_compiled() { return cuda_factory() != nullptr; }

bool register_backend(BackendKind kind, BackendFactory factory) {
  POPPER_CHECK(kind == BackendKind::kCuda && factory != nullptr, "only a CUDA backend registers");
  POPPER_CHECK(cuda_factory() == nullptr, "two CUDA backends linked into one binary");
  cuda_factory() = factory;
  return true;
}

Result<std::unique_ptr<Backend>> make_backend(BackendKind kind, int n_threads, const Model* model) {
  if (kind == BackendKind::kCuda) return make_cuda(n_threads, model);
  // Fault backend_auto_ignores_gpu: auto falls back to the CPU without asking the GPU.
  if (kind == BackendKind::kAuto && cuda_backend_compiled() && !fault_on(Fault::kBackendAutoIgnoresGpu)) {
    auto b = make_cuda(n_threads, model);
    if (b.ok()) return b;
  }
  auto cpu = std::unique_ptr<Backend>(new CpuBackend(n_threads));
  if (model != nullptr) {
    auto w = model->weights_on(*cpu);
    if (!w.ok()) return w.error();
  }
  return cpu;
}

}  // namespace popper
