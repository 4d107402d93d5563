#include "engine/cpu/packed_matmul.h"

#include <algorithm>
#include <vector>

#include "engine/core/result.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/repack.h"
#include "engine/quant/traits.h"

namespace popper::cpu {
namespace {

using PackedGemmFn = void (*)(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups,
                              const uint8_t* a, int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);

struct PackedKernels {
  GgmlType type;
  PackedGemmFn avx2;
};
constexpr PackedKernels kPacked[] = {
    {GgmlType::Q4_K, avx2::packed_gemm_q4_k},
    {GgmlType::Q5_K, avx2::packed_gemm_q5_k},
    {GgmlType::Q6_K, avx2::packed_gemm_q6_k},
    {GgmlType::Q8_0, avx2::packed_gemm_q8_0},
};

PackedGemmFn packed_kernel(GgmlType type, SimdPath path) {
  if (path == SimdPath::kScalar || vec_dot_fn(type, SimdPath::kAvx2) == nullptr) return nullptr;
  for (const auto& k : kPacked) {
    if (k.type == type) return k.avx2;  // the AVX2 kernels serve AVX-512 CPUs too
  }
  return nullptr;
}

// The reference behaviour on packed weights: unpack each group to the file's layout and run the
// scalar dot, row by row.
void scalar_rows(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy, int64_t g0,
                 int64_t g1) {
  const int64_t row_bytes = w.group_bytes / kPackRows;
  thread_local std::vector<uint8_t> rows;
  rows.resize(static_cast<size_t>(w.group_bytes));
  const VecDotFn dot = vec_dot_fn(w.type, SimdPath::kScalar);
  for (int64_t g = g0; g < g1; ++g) {
    unpack_rows(w.type, w.data + g * w.group_bytes, w.n_in, kPackRows, rows.data());
    for (int64_t t = 0; t < x.n_rows(); ++t) {
      for (int r = 0; r < kPackRows; ++r)
        y[t * ldy + g * kPackRows + r] = dot(w.n_in, rows.data() + r * row_bytes, x.row(t));
    }
  }
}

constexpr int64_t kChunksPerThread = 4;

}  // namespace

bool can_pack(GgmlType type, int64_t n_in, int64_t n_out) {
  return has_packed_layout(type) && n_out % kPackRows == 0 && n_in % ggml_type_info(type).block_size == 0;
}

PackedMatrix PackedMatrix::make(GgmlType type, const void* data, int64_t n_in, int64_t n_out) {
  POPPER_CHECK(can_pack(type, n_in, n_out), "no x8 layout for ", ggml_type_name(type), " [", n_in, ", ",
               n_out, "]");
  PackedMatrix w;
  w.type = type;
  w.data = static_cast<const uint8_t*>(data);
  w.n_in = n_in;
  w.n_out = n_out;
  w.group_bytes = kPackRows * ggml_row_size(type, n_in);
  return w;
}

PackedMatrix PackedMatrix::rows(int64_t first_row, int64_t n_rows) const {
  POPPER_CHECK(first_row % kPackRows == 0 && n_rows % kPackRows == 0 && first_row >= 0 && n_rows >= 0 &&
                   first_row + n_rows <= n_out,
               "packed rows [", first_row, ", ", first_row + n_rows, ") of ", n_out);
  PackedMatrix w = *this;
  w.data = data + first_row / kPackRows * group_bytes;
  w.n_out = n_rows;
  return w;
}

void packed_matmul_rows(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                        int64_t row_begin, int64_t row_end, SimdPath path) {
  POPPER_CHECK(x.type() == quant_traits(w.type)->vec_dot_type, "activations are ", ggml_type_name(x.type()),
               ", ", ggml_type_name(w.type), " wants ", ggml_type_name(quant_traits(w.type)->vec_dot_type));
  POPPER_CHECK(x.n_cols() == w.n_in, "activations have ", x.n_cols(), " columns, weights ", w.n_in);
  POPPER_CHECK(row_begin % kPackRows == 0 && row_end % kPackRows == 0 && row_begin >= 0 && row_end <= w.n_out,
               "packed rows [", row_begin, ", ", row_end, ") of ", w.n_out);
  const int64_t g0 = row_begin / kPackRows, g1 = row_end / kPackRows;
  if (g1 <= g0 || x.n_rows() == 0) return;
  const PackedGemmFn fn = packed_kernel(w.type, path);
  if (fn == nullptr) return scalar_rows(w, x, y, ldy, g0, g1);
  fn(w.n_in, w.data + g0 * w.group_bytes, w.group_bytes, g1 - g0, x.row(0), x.row_bytes(), x.n_rows(),
     y + g0 * kPackRows, ldy);
}

void packed_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                   ThreadPool& pool) {
  const int64_t groups = w.n_out / kPackRows;
  const int64_t grain = std::max<int64_t>(1, groups / (pool.size() * kChunksPerThread));
  pool.parallel_for(groups, grain, [&](int64_t begin, int64_t end, int) {
    packed_matmul_rows(w, x, y, ldy, begin * kPackRows, end * kPackRows);
  });
}

}  // namespace popper::cpu
