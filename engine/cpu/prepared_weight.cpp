#include "engine/cpu/prepared_weight.h"

#include <algorithm>
#include <cstring>

#include "engine/core/faults.h"
#include "engine/core/result.h"
#include "engine/cpu/repack.h"

namespace popper::cpu {

const float* PreparedWeight::norm_values() const {
  POPPER_CHECK(rows_.type == GgmlType::F32 && n_out_ == 1 && n_expert_ == 1,
               "not a norm weight: ", ggml_type_name(rows_.type), " [", rows_.n_in, ", ", n_out_, ", ",
               n_expert_, "]");
  return reinterpret_cast<const float*>(rows_.data);
}

WeightMatrix PreparedWeight::file_rows(int64_t e) const {
  POPPER_CHECK(!packed(), "file_rows() of a repacked ", ggml_type_name(rows_.type), " weight");
  return rows_.rows(e * n_out_, n_out_);
}

bool repacks(const WeightMatrix& file, int64_t n_expert, WeightUse use, const PrepareOptions& options) {
  // Every expert's slice must be whole packed groups (PackedMatrix::rows).
  return options.repack && use == WeightUse::kMatmul && file.n_out > 0 && n_expert >= 1 &&
         file.n_out % n_expert == 0 && can_pack(file.type, file.n_in, file.n_out / n_expert);
}

Result<PreparedWeight> prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use,
                                      const PrepareOptions& options) {
  POPPER_CHECK(n_expert >= 1 && file.n_out % n_expert == 0, "", file.n_out, " rows are not ", n_expert,
               " experts");
  POPPER_CHECK(use != WeightUse::kNorm || (file.type == GgmlType::F32 && file.n_out == 1),
               "a norm is [n] f32");
  PreparedWeight w;
  w.rows_ = file;  // the file's layout, in place
  w.n_out_ = file.n_out / n_expert;
  w.n_expert_ = n_expert;
  if (!repacks(file, n_expert, use, options)) return w;

  // The x8 copy: as many bytes as the file's rows (repack.h), read from the file once.
  const size_t bytes = size_t(file.row_bytes) * size_t(file.n_out);
  auto buffer = PackedBuffer::allocate(bytes);
  if (!buffer.ok()) return buffer.error();
  w.owned_ = std::move(buffer.value());
  uint8_t* dst = w.owned_.data();
  const int64_t groups = file.n_out / kPackRows;
  const int64_t group_bytes = kPackRows * file.row_bytes;
  auto repack = [&](int64_t g0, int64_t g1, int) {
    repack_rows(file.type, file.data + g0 * group_bytes, file.n_in, (g1 - g0) * kPackRows,
                dst + g0 * group_bytes);
  };
  if (options.pool != nullptr && options.pool->size() > 1 && groups > 1) {
    options.pool->parallel_for(groups, std::max<int64_t>(1, groups / (int64_t(options.pool->size()) * 16)),
                               repack);
  } else {
    repack(0, groups, 0);
  }
  if (fault_on(Fault::kRepackDropsLastGroup)) {  // control: once per matrix, after the copy
    std::memset(dst + (groups - 1) * group_bytes, 0, size_t(group_bytes));
  }
  w.packed_ = PackedMatrix::make(file.type, dst, file.n_in, file.n_out);
  w.rows_.data = nullptr;  // the file's bytes are the caller's to release from here on
  return w;
}

void matmul_rows(const PreparedWeight& w, int64_t e, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end) {
  if (w.packed()) {
    packed_matmul_rows(w.packed_rows(e), x, y, ldy, row_begin, row_end);
  } else {
    matmul_rows(w.file_rows(e), x, y, ldy, row_begin, row_end);
  }
}

}  // namespace popper::cpu
