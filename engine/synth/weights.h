// Deterministic weight values for synthetic models.
//
// Two ways to make a tensor's bytes, both keyed by (seed, tensor name, row) so the bytes do not
// depend on thread count or generation order:
//  - from floats: draw each row from a scaled normal, then quantise it with the scalar reference
//    quantiser (engine/quant). Small presets use this, so e.g. tiny F32 and tiny Q4_K_M hold the
//    same underlying weights.
//  - direct blocks: draw quantised blocks (scales, mins, packed values) at random with the same
//    target spread. The 30b-a3b preset uses this for k-quant tensors: quantising 30B floats with
//    the reference quantiser would take most of an hour, random blocks take seconds.
//
// Spreads are chosen so activations stay finite and routing is non-degenerate: projections
// std 1/sqrt(fan_in) (unit-variance outputs), norms 1 + 0.1 N, the router 2/sqrt(n_embd) so
// softmax over experts is peaked but varies from token to token.
#pragma once

#include <cstdint>
#include <span>

#include "engine/core/result.h"
#include "engine/synth/tensor_plan.h"

namespace popper {

// Standard deviation of a tensor's values by role.
float synth_weight_std(const PlannedTensor& tensor);

// Fills `out` (the tensor's n_bytes) with its values. direct_blocks selects the direct random
// block method for Q4_K / Q6_K tensors (ignored for other types).
Status fill_synth_tensor(const PlannedTensor& tensor, uint64_t seed, bool direct_blocks, std::span<uint8_t> out);

}  // namespace popper
