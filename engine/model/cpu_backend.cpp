#include "engine/model/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "engine/core/faults.h"
#include "engine/cpu/elementwise.h"
#include "engine/cpu/embed.h"
#include "engine/cpu/kv_store.h"
#include "engine/cpu/moe_route.h"
#include "engine/cpu/norm.h"
#include "engine/cpu/rope.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

// A cache line, and the widest vector any kernel loads.
constexpr size_t kBufferAlignment = 64;

// A CPU handle: the CPU backend's own weight object.
class CpuWeight final : public BackendWeight {
 public:
  explicit CpuWeight(cpu::PreparedWeight w)
      : BackendWeight(kHostDevice, w.type(), w.n_in(), w.n_out(), w.n_expert()), w_(std::move(w)) {}
  bool views_file() const override { return w_.views_file(); }
  const cpu::PreparedWeight& prepared() const { return w_; }

 private:
  cpu::PreparedWeight w_;
};

const cpu::PreparedWeight& cpu_weight(const BackendWeight& w) {
  return backend_weight_as<CpuWeight>(w, kHostDevice).prepared();
}

// POPPER_REPACK=0: every weight in the file's layout (the reference path, engine/cpu/prepared_weight.h).
bool repack_from_environment() {
  const char* v = std::getenv("POPPER_REPACK");
  return v == nullptr || std::string_view(v) != "0";
}

cpu::FfnWeights cpu_ffn(const FfnWeights& f) {
  return {&cpu_weight(*f.gate), &cpu_weight(*f.up), &cpu_weight(*f.down)};
}

// A CPU KV cache: the bookkeeping, and the entries in a cpu::KvStore.
class CpuKvCache final : public KvCache {
 public:
  explicit CpuKvCache(const KvCacheShape& s)
      : KvCache(s, kHostDevice),
        store_(s.n_layer, s.n_head_kv, s.head_dim, s.capacity, kv_ggml_type(s.type)) {}
  cpu::KvStore& store() { return store_; }
  const cpu::KvStore& store() const { return store_; }

 private:
  cpu::KvStore store_;
};

}  // namespace

CpuBackend::CpuBackend(int n_threads)
    : pool_(n_threads), repack_(repack_from_environment()), attention_(pool_.size()) {}

Result<std::unique_ptr<BackendWeight>> CpuBackend::prepare_weight(const WeightMatrix& file, int64_t n_expert,
                                                                  WeightUse use) {
  if (quant_traits(file.type) == nullptr)
    return make_error("the CPU backend has no kernels for ", ggml_type_name(file.type));
  auto w = cpu::prepare_weight(file, n_expert, use, {.repack = repack_, .pool = &pool_});
  if (!w.ok()) return w.error();
  return std::unique_ptr<BackendWeight>(new CpuWeight(std::move(w.value())));
}

Result<std::unique_ptr<KvCache>> CpuBackend::make_kv_cache(const KvCacheShape& shape) {
  return std::unique_ptr<KvCache>(new CpuKvCache(shape));
}

Result<void*> CpuBackend::allocate(size_t bytes) {
  void* p = ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t{kBufferAlignment}, std::nothrow);
  if (p == nullptr) return make_error("out of host memory: ", bytes, " bytes asked for");
  return p;
}
void CpuBackend::deallocate(void* p) { ::operator delete(p, std::align_val_t{kBufferAlignment}); }
void CpuBackend::upload(void* dst, const void* host, size_t bytes) {
  if (bytes != 0) std::memcpy(dst, host, bytes);
}
void CpuBackend::download(void* host, const void* src, size_t bytes) {
  if (bytes != 0) std::memcpy(host, src, bytes);
}

void CpuBackend::embed(const BackendWeight& table, const int32_t* tokens, int64_t n_tokens, float* x) {
  cpu::embed(cpu_weight(table), tokens, n_tokens, x);
}

void CpuBackend::rmsnorm(const float* x, const BackendWeight& w, int64_t n_rows, float eps, float* y) {
  cpu::rmsnorm(x, cpu_weight(w).norm_values(), n_rows, w.n_in(), eps, y);
}

void CpuBackend::project(std::span<const Projection> outs, const float* x, int64_t n_tokens) {
  project_outputs_.clear();
  for (const Projection& p : outs) project_outputs_.push_back({&cpu_weight(*p.w), p.y});
  projector_.project(project_outputs_, x, n_tokens, pool_);
}

void CpuBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                      float freq_base) {
  cpu::rope_neox(x, n_tokens, n_heads, head_dim, pos0, freq_base, rope_cos_sin_);
}

Status CpuBackend::store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                            const float* v) {
  POPPER_RETURN_IF_ERROR(cache.check_range(pos0, n_tokens));
  kv_cache_as<CpuKvCache>(cache, kHostDevice).store().store(il, pos0, n_tokens, k, v);
  return Status::success();
}

void CpuBackend::attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                           const AttentionShape& s, float* out) {
  // Fault attention_drops_last_key: a continuing step's queries see one key fewer (their own).
  const int64_t key_pos0 = pos0 > 0 && fault_on(Fault::kAttentionDropsLastKey) ? pos0 - 1 : pos0;
  cpu::attention(kv_cache_as<CpuKvCache>(cache, kHostDevice).store(), il, q, n_tokens, key_pos0, s, out,
                 attention_, pool_);
}

void CpuBackend::moe_route(const BackendWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k,
                           int32_t* ids, float* weights) {
  cpu::moe_route(cpu_weight(gate_inp), x, n_tokens, k, ids, weights, router_logits_, projector_, pool_);
}

void CpuBackend::moe_ffn(const FfnWeights& experts, const float* x, int64_t n_tokens, const int32_t* ids,
                         const float* weights, int64_t k, float* out) {
  cpu::moe_ffn(cpu_ffn(experts), x, n_tokens, ids, weights, k, out, moe_ffn_, projector_, pool_);
}

void CpuBackend::dense_ffn(const FfnWeights& ffn, const float* x, int64_t n_tokens, float* out) {
  cpu::dense_ffn(cpu_ffn(ffn), x, n_tokens, out, dense_ffn_, projector_, pool_);
}

void CpuBackend::add(float* x, const float* y, int64_t n) { cpu::add(x, y, n); }

void CpuBackend::output_logits(const BackendWeight& norm, const BackendWeight& output, const float* x,
                               int64_t n_rows, float eps, float* logits) {
  output_normed_.resize(size_t(n_rows * norm.n_in()));
  cpu::rmsnorm(x, cpu_weight(norm).norm_values(), n_rows, norm.n_in(), eps, output_normed_.data());
  const cpu::Projector::Output p{&cpu_weight(output), logits};
  projector_.project({&p, 1}, output_normed_.data(), n_rows, pool_);
}

}  // namespace popper
