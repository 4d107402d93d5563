// MoE routing (llama.cpp's qwen3moe: softmax gating, top-k, weights normalised): router logits
// = x · gate_inp; probs = softmax over all experts; the k largest probs win, ties broken by the
// lower expert index; the k weights are divided by their sum.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/prepared_weight.h"
#include "engine/cpu/project.h"

namespace popper::cpu {

// probs[i] = exp(logits[i] - max) / sum, sum accumulated in double. Finite for any finite
// logits, however extreme (the max is subtracted first). logits, probs: [n] (may alias).
void router_softmax(const float* logits, int64_t n, float* probs);

// ids[0..k): indices of the k largest probs, largest first, ties to the lower index.
// weights[0..k): those probs divided by their sum. probs: [n], k <= n.
void router_top_k(const float* probs, int64_t n, int64_t k, int32_t* ids, float* weights);

// The router for n_tokens tokens. gate_inp: [n_embd, n_expert] f32; x: [n_tokens, n_embd];
// ids, weights: [n_tokens, k] (slot 0 = largest). logits: scratch, grown to [n_tokens, n_expert].
void moe_route(const PreparedWeight& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
               float* weights, std::vector<float>& logits, Projector& projector, ThreadPool& pool);

}  // namespace popper::cpu
