#include "engine/model/backend_factory.h"

#include "engine/model/cpu_backend.h"
#include "engine/model/cuda_backend.h"

namespace popper {

Result<BackendKind> parse_backend_kind(const std::string& name) {
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  if (name == "auto") return BackendKind::kAuto;
  return make_error("--backend: want cpu, cuda or auto, got '", name, "'");
}

bool cuda_backend_compiled() {
#ifdef POPPER_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

Result<std::unique_ptr<Backend>> make_cuda([[maybe_unused]] const ModelWeights* weights) {
#ifdef POPPER_HAVE_CUDA
  auto b = CudaBackend::create();
  if (!b.ok()) return b.error();
  if (weights != nullptr) POPPER_RETURN_IF_ERROR(b.value()->upload_weights(*weights));
  return std::unique_ptr<Backend>(std::move(b.value()));
#else
  return make_error("the CUDA backend is not built into this binary (configure with -DPOPPER_CUDA=ON and nvcc)");
#endif
}

}  // namespace

Result<std::unique_ptr<Backend>> make_backend(BackendKind kind, int n_threads, const ModelWeights* weights) {
  if (kind == BackendKind::kCpu) return std::unique_ptr<Backend>(new CpuBackend(n_threads));
  if (kind == BackendKind::kCuda) return make_cuda(weights);
  if (cuda_backend_compiled()) {
    auto b = make_cuda(weights);
    if (b.ok()) return b;
  }
  return std::unique_ptr<Backend>(new CpuBackend(n_threads));
}

}  // namespace popper
