#include "engine/cpu/project.h"

#include <algorithm>

#include "engine/core/result.h"
#include "engine/cpu/parallel.h"
#include "engine/quant/traits.h"

namespace popper::cpu {
namespace {

// Weight bytes per work item: big enough to amortise the dispatch, small enough that a decode
// matvec splits into many more items than threads (the pool balances them dynamically).
constexpr int64_t kChunkWeightBytes = 32 * 1024;

// f32, q8_0 and q8_K, with room to spare: project() holds pointers into activations_ while it
// adds slots, so the vector is sized once and never reallocates.
constexpr size_t kMaxActivationFormats = 4;

// Whole packed groups for a repacked weight (matmul_rows takes row ranges on its row_align()).
int64_t rows_per_item(const PreparedWeight& w) {
  const int64_t align = w.row_align();
  const int64_t rows = kChunkWeightBytes / std::max<int64_t>(1, w.row_bytes());
  return std::max<int64_t>(align, rows / align * align);
}

}  // namespace

GgmlType activation_type_of(GgmlType weight_type) {
  const QuantTraits* t = quant_traits(weight_type);
  POPPER_CHECK(t != nullptr, "no kernels for ", ggml_type_name(weight_type), " (the loader checks this)");
  return t->vec_dot_type;
}

Projector::Projector() { activations_.resize(kMaxActivationFormats); }

const QuantizedActivations& Projector::activations_for(GgmlType weight_type, const float* x, int64_t n_rows,
                                                       int64_t n_cols, ThreadPool& pool) {
  const GgmlType want = activation_type_of(weight_type);
  for (size_t i = 0; i < activation_types_.size(); ++i) {
    if (activation_types_[i] == want) return activations_[i];
  }
  POPPER_CHECK(activation_types_.size() < activations_.size(), "more activation formats than slots");
  activation_types_.push_back(want);
  QuantizedActivations& a = activations_[activation_types_.size() - 1];
  a.quantize(x, n_rows, n_cols, n_cols, want, n_rows * n_cols * 4 >= kParallelMinWork ? &pool : nullptr);
  return a;
}

void Projector::project(std::span<const Output> outs, const float* x, int64_t n_tokens, ThreadPool& pool) {
  activation_types_.clear();
  jobs_.clear();
  for (const Output& o : outs) {
    POPPER_CHECK(o.w->n_expert() == 1, "project() of an expert tensor");
    const QuantizedActivations& a = activations_for(o.w->type(), x, n_tokens, o.w->n_in(), pool);
    jobs_.push_back({o.w, 0, &a, o.y});
  }
  run(jobs_, pool);
}

void Projector::run(std::span<const MatmulJob> jobs, ThreadPool& pool) {
  int64_t work = 0;
  for (const MatmulJob& job : jobs) work += job.w->row_bytes() * job.w->n_out() * job.x->n_rows();
  if (work < kParallelMinWork) {
    for (const MatmulJob& job : jobs) {
      matmul_rows(*job.w, job.expert, *job.x, job.y, job.w->n_out(), 0, job.w->n_out());
    }
    return;
  }
  items_.clear();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const int64_t rows = rows_per_item(*jobs[j].w);
    for (int64_t r = 0; r < jobs[j].w->n_out(); r += rows) items_.emplace_back(int64_t(j), r);
  }
  pool.parallel_for(int64_t(items_.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      const MatmulJob& job = jobs[size_t(items_[c].first)];
      const int64_t r0 = items_[c].second;
      const int64_t n_out = job.w->n_out();
      matmul_rows(*job.w, job.expert, *job.x, job.y, n_out, r0, std::min(n_out, r0 + rows_per_item(*job.w)));
    }
  });
}

}  // namespace popper::cpu
