#include "engine/cpu/embed.h"

#include "engine/core/result.h"
#include "engine/quant/traits.h"

namespace popper::cpu {

void embed(const PreparedWeight& table, const int32_t* tokens, int64_t n_tokens, float* x) {
  const WeightMatrix rows = table.file_rows();
  const QuantTraits* t = quant_traits(rows.type);
  POPPER_CHECK(t != nullptr, "token_embd type");
  for (int64_t i = 0; i < n_tokens; ++i) {
    POPPER_DCHECK(tokens[i] >= 0 && tokens[i] < rows.n_out, "token ", tokens[i]);
    t->dequantize_row(rows.data + int64_t(tokens[i]) * rows.row_bytes, x + i * rows.n_in, rows.n_in);
  }
}

}  // namespace popper::cpu
