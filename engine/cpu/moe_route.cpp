#include "engine/cpu/moe_route.h"

#include <algorithm>
#include <cmath>

#include "engine/core/faults.h"
#include "engine/core/result.h"

namespace popper::cpu {

void router_softmax(const float* logits, int64_t n, float* probs) {
  float max = logits[0];
  for (int64_t i = 1; i < n; ++i) max = logits[i] > max ? logits[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp(logits[i] - max);
    probs[i] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) probs[i] *= inv;
}

void router_top_k(const float* probs, int64_t n, int64_t k, int32_t* ids, float* weights) {
  POPPER_CHECK(k > 0 && k <= n, "top-k ", k, " of ", n);
  // Partial sort of the indices by (prob descending, index ascending): a total order, so ties
  // go to the lower expert index on every platform.
  thread_local std::vector<int32_t> order;
  order.resize(n);
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [probs](int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  });
  for (int64_t s = 0; s < k; ++s) ids[s] = order[s];
  float sum = 0.0f;
  for (int64_t s = 0; s < k; ++s) sum += probs[ids[s]];
  if (fault_on(Fault::kMoeRouterSkipsRenorm)) sum = 1.0f;  // the fault: top-k weights not renormalised
  for (int64_t s = 0; s < k; ++s) weights[s] = probs[ids[s]] / sum;
}

void moe_route(const PreparedWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
               float* weights, std::vector<float>& logits, Projector& projector, ThreadPool& pool) {
  const int64_t n_expert = gate_inp.n_out();
  logits.resize(size_t(n_tokens * n_expert));
  const Projector::Output p{&gate_inp, logits.data()};
  projector.project({&p, 1}, x, n_tokens, pool);
  // Fault moe_router_reads_zeros: the scores of a zeroed input, so every token gets experts 0..k-1.
  if (fault_on(Fault::kMoeRouterReadsZeros)) std::fill(logits.begin(), logits.end(), 0.0f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* probs = logits.data() + t * n_expert;
    router_softmax(probs, n_expert, probs);
    router_top_k(probs, n_expert, k, ids + t * k, weights + t * k);
  }
}

}  // namespace popper::cpu
