#include "engine/model/sampler.h"

#include <algorithm>
#include <cmath>

namespace popper {

Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return make_error("temperature: want a finite value >= 0, got ", p.temperature);
  }
  if (p.top_k < 0) return make_error("top_k: want >= 0, got ", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return make_error("top_p: want a value in (0, 1], got ", p.top_p);
  return Status::success();
}

int32_t argmax_token(std::span<const float> logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = int32_t(i);
  }
  return best < 0 ? 0 : best;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return argmax_token(logits);
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i])) candidates_.emplace_back(logits[i] / params_.temperature, int32_t(i));
  }
  if (candidates_.empty()) return 0;
  // Largest first, ties to the lower id: a total order, so the draw is reproducible.
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
    keep = size_t(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  const float max = candidates_[0].first;
  double sum = 0.0;
  for (auto& c : candidates_) {
    c.first = std::exp(c.first - max);
    sum += c.first;
  }
  // Nucleus: the smallest prefix whose probability mass reaches top_p.
  double mass = 0.0;
  size_t n = candidates_.size();
  for (size_t i = 0; i < candidates_.size(); ++i) {
    mass += candidates_[i].first / sum;
    if (mass >= params_.top_p) {
      n = i + 1;
      break;
    }
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += candidates_[i].first;
  const double r = double(rng_.uniform()) * total;
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += candidates_[i].first;
    if (r < acc) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

}  // namespace popper
