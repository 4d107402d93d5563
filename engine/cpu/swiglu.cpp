#include "engine/cpu/swiglu.h"

#include <algorithm>
#include <vector>

#include "engine/core/result.h"
#include "engine/cpu/repack.h"

namespace popper::cpu {

void packed_swiglu_rows(const PackedMatrix& gate, const PackedMatrix& up, const QuantizedActivations& x,
                        float* h, int64_t ldh, int64_t row_begin, int64_t row_end,
                        QuantizedActivations* down_in) {
  POPPER_CHECK(gate.type == up.type && gate.n_in == up.n_in && gate.n_out == up.n_out,
               "gate and up differ: ", ggml_type_name(gate.type), " [", gate.n_in, ", ", gate.n_out, "] vs ",
               ggml_type_name(up.type), " [", up.n_in, ", ", up.n_out, "]");
  const int64_t n_tokens = x.n_rows();
  const int64_t rows = row_end - row_begin;
  if (rows <= 0 || n_tokens == 0) return;
  // The up projection of the slice, [n_tokens, rows]; the gate's goes straight into h.
  thread_local std::vector<float> up_rows;
  up_rows.resize(static_cast<size_t>(n_tokens * rows));
  packed_matmul_rows(gate, x, h, ldh, row_begin, row_end);
  packed_matmul_rows(up.rows(row_begin, rows), x, up_rows.data(), rows, 0, rows);
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* ht = h + t * ldh + row_begin;
    const float* ut = up_rows.data() + t * rows;
    for (int64_t o = 0; o < rows; ++o) ht[o] = silu(ht[o]) * ut[o];
    if (down_in != nullptr) down_in->quantize_cols(t, row_begin, row_end, ht);
  }
}

}  // namespace popper::cpu
