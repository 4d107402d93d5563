#include "engine/model/backend.h"

#include <type_traits>

namespace popper {

WeightRef PreparedWeights::own(std::unique_ptr<BackendWeight> w) {
  owned_.push_back(std::move(w));
  return owned_.back().get();
}

Result<std::unique_ptr<BackendWeight>> Backend::prepare_norm(const NormWeight& norm) {
  return prepare_weight(WeightMatrix::make(GgmlType::F32, norm.data, norm.n, 1), 1, WeightUse::kNorm);
}

Result<std::unique_ptr<PreparedWeights>> Backend::prepare(const ModelWeights& file, const CopiedFn& copied) {
  auto out = std::make_unique<PreparedWeights>(device());
  Status failed;
  // One tensor: a null view stays a null handle (the arch has no such tensor).
  auto take = [&](WeightRef& handle, const WeightMatrix& view, int64_t n_expert, WeightUse use) {
    if (!failed.ok() || view.data == nullptr) return;
    auto w = prepare_weight(view, n_expert, use);
    if (!w.ok()) {
      failed = w.error();
      return;
    }
    handle = out->own(std::move(w.value()));
    if (copied && !handle->views_file()) copied(view.data, uint64_t(view.n_out) * uint64_t(view.row_bytes));
  };
  auto take_any = [&](WeightRef& handle, const auto& view) {
    using View = std::decay_t<decltype(view)>;
    if constexpr (std::is_same_v<View, NormWeight>) {
      if (view.data == nullptr) return;
      take(handle, WeightMatrix::make(GgmlType::F32, view.data, view.n, 1), 1, WeightUse::kNorm);
    } else if constexpr (std::is_same_v<View, ExpertWeights>) {
      take(handle, view.all, view.n_expert, WeightUse::kMatmul);
    } else {
      take(handle, view, 1, WeightUse::kMatmul);
    }
  };
  // token_embd's rows are looked up one at a time; a tied output reads the same handle.
  take(out->token_embd, file.token_embd, 1, WeightUse::kRowLookup);
  take_any(out->output_norm, file.output_norm);
  if (file.output_tied) {
    out->output = out->token_embd;
  } else {
    take_any(out->output, file.output);
  }
  out->layers.resize(file.layers.size());
  for (size_t il = 0; il < file.layers.size(); ++il) {
    for_each_layer_tensor(out->layers[il], file.layers[il], take_any);
  }
  if (!failed.ok()) return failed.error();
  return out;
}

}  // namespace popper
