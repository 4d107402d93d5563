#include "engine/cpu/prepared_weight.h"

#include "engine/core/result.h"

namespace popper::cpu {

const float* PreparedWeight::norm_values() const {
  POPPER_CHECK(rows_.type == GgmlType::F32 && n_out_ == 1 && n_expert_ == 1,
               "not a norm weight: ", ggml_type_name(rows_.type), " [", rows_.n_in, ", ", n_out_, ", ",
               n_expert_, "]");
  return reinterpret_cast<const float*>(rows_.data);
}

PreparedWeight prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use) {
  POPPER_CHECK(n_expert >= 1 && file.n_out % n_expert == 0, "", file.n_out, " rows are not ", n_expert,
               " experts");
  POPPER_CHECK(use != WeightUse::kNorm || (file.type == GgmlType::F32 && file.n_out == 1),
               "a norm is [n] f32");
  PreparedWeight w;
  w.rows_ = file;  // the file's layout, in place (see the header: a repacked copy would go to owned_)
  w.n_out_ = file.n_out / n_expert;
  w.n_expert_ = n_expert;
  return w;
}

void matmul_rows(const PreparedWeight& w, int64_t e, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end) {
  matmul_rows(w.file_rows(e), x, y, ldy, row_begin, row_end);
}

}  // namespace popper::cpu
