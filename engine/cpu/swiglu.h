// The SwiGLU feed-forward's first half on packed weights, fused: gate and up projections of the
// same rows in one pass and silu(gate) * up written straight out, optionally already quantised
// for the down projection. One work item per 256 rows (one Q8_K block of the down input), so a
// MoE decode step hands its threads 3 equal items per selected expert (n_ff_exp = 768) and the
// two intermediate rows never leave the cache.
#pragma once

#include <cstdint>

#include "engine/cpu/elementwise.h"  // silu: the unfused path computes exactly it
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_matmul.h"

namespace popper::cpu {

// Rows per fused work item: a Q8_K block, so each item quantises its own slice of the down input.
inline constexpr int64_t kSwigluChunk = 256;

// For rows [row_begin, row_end) of gate and up ([n_embd, n_ff] each, same type and shape; row
// bounds multiples of kPackRows): h[t * ldh + o] = silu(gate_o . x_t) * (up_o . x_t) for every token
// of x (x in the weights' vec_dot_type). Bit-identical to the two packed matmuls followed by
// silu(g) * u. When `down_in` is given (activations in `down_type`, n_ff columns, x.n_rows() rows,
// sized by the caller with prepare()), rows [row_begin, row_end) must be whole blocks of
// down_type and their quantisation is written there too (bit-identical to quantising all of h).
void packed_swiglu_rows(const PackedMatrix& gate, const PackedMatrix& up, const QuantizedActivations& x,
                        float* h, int64_t ldh, int64_t row_begin, int64_t row_end,
                        QuantizedActivations* down_in = nullptr);

}  // namespace popper::cpu
