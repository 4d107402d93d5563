// Token embedding: rows of the embedding table, dequantised to f32.
#pragma once

#include <cstdint>

#include "engine/cpu/prepared_weight.h"

namespace popper::cpu {

// x[t, :] = dequantised row tokens[t] of table ([n_embd, n_vocab], prepared with
// WeightUse::kRowLookup). Token ids must be in [0, n_vocab) (the session checks; debug builds
// check again). x: [n_tokens, n_embd] f32.
void embed(const PreparedWeight& table, const int32_t* tokens, int64_t n_tokens, float* x);

}  // namespace popper::cpu
