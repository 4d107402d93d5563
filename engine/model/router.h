// The MoE router's arithmetic (llama.cpp's qwen3moe: softmax gating, top-k, weights normalised):
// probs = softmax(router logits over all experts); the k largest probs win, ties broken by the
// lower expert index; the k weights are divided by their sum.
#pragma once

#include <cstdint>

namespace popper {

// probs[i] = exp(logits[i] - max) / sum, sum accumulated in double. Finite for any finite
// logits, however extreme (the max is subtracted first). logits, probs: [n] (may alias).
void router_softmax(const float* logits, int64_t n, float* probs);

// ids[0..k): indices of the k largest probs, largest first, ties to the lower index.
// weights[0..k): those probs divided by their sum. probs: [n], k <= n.
void router_top_k(const float* probs, int64_t n, int64_t k, int32_t* ids, float* weights);

}  // namespace popper
