#include "engine/cpu/packed_matmul.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <mutex>
#include <vector>

#include "engine/core/cpu_features.h"
#include "engine/core/log.h"
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
  PackedGemmFn avx512;
};
constexpr PackedKernels kPacked[] = {
    {GgmlType::Q4_K, avx2::packed_gemm_q4_k, avx512::packed_gemm_q4_k},
    {GgmlType::Q5_K, avx2::packed_gemm_q5_k, avx512::packed_gemm_q5_k},
    {GgmlType::Q6_K, avx2::packed_gemm_q6_k, avx512::packed_gemm_q6_k},
    {GgmlType::Q8_0, avx2::packed_gemm_q8_0, avx512::packed_gemm_q8_0},
};

// Deterministic pseudo-random bytes (xorshift) for the self-check below.
struct Bytes {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  uint8_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<uint8_t>(state >> 24);
  }
};

// The AVX-512 kernels are built everywhere but run only where the CPU has the features, which
// the machines this code is developed on may lack. Before trusting them, each type's kernel is
// checked once against the scalar reference on a small random matrix (bit for bit, as
// falsifiers/packed_matmul_test.cpp checks every path); a mismatch is logged and the AVX2 kernel
// serves instead. Costs well under a millisecond, once per process and type.
bool avx512_kernel_agrees(GgmlType type, PackedGemmFn fn) {
  const int64_t n_in = type == GgmlType::Q8_0 ? 64 : 512, n_out = 16, tokens = 5;
  const int64_t row_bytes = ggml_row_size(type, n_in);
  std::vector<uint8_t> file(static_cast<size_t>(row_bytes * n_out)), packed(file.size());
  Bytes rng;
  for (auto& b : file) b = rng.next();
  // Finite, small fp16 scales: d (and dmin) fields get 0x2xxx (~1e-3 .. 1e-2).
  const int64_t block_bytes = ggml_type_info(type).type_size;
  const int64_t nb = n_in / ggml_type_info(type).block_size;
  for (int64_t r = 0; r < n_out; ++r) {
    for (int64_t i = 0; i < nb; ++i) {
      uint8_t* blk = file.data() + r * row_bytes + i * block_bytes;
      const int64_t d_at = type == GgmlType::Q6_K ? block_bytes - 2 : 0;
      blk[d_at + 1] = static_cast<uint8_t>(0x20 | (blk[d_at + 1] & 0x07));
      if (type == GgmlType::Q4_K || type == GgmlType::Q5_K)
        blk[3] = static_cast<uint8_t>(0x20 | (blk[3] & 0x07));
    }
  }
  repack_rows(type, file.data(), n_in, n_out, packed.data());
  std::vector<float> x(static_cast<size_t>(tokens * n_in));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.next()) - 128) / 16.0f;
  QuantizedActivations a;
  a.quantize(x.data(), tokens, n_in, n_in, quant_traits(type)->vec_dot_type);
  std::vector<float> got(static_cast<size_t>(tokens * n_out)), want(got.size());
  fn(n_in, packed.data(), kPackRows * row_bytes, n_out / kPackRows, a.row(0), a.row_bytes(), tokens,
     got.data(), n_out);
  const VecDotFn dot = vec_dot_fn(type, SimdPath::kScalar);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < n_out; ++r)
      want[t * n_out + r] = dot(n_in, file.data() + r * row_bytes, a.row(t));
  }
  if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0) return true;
  log_error("AVX-512 packed ", ggml_type_name(type),
            " kernel disagrees with the scalar reference on this CPU; using the AVX2 kernel");
  return false;
}

PackedGemmFn packed_kernel(GgmlType type, SimdPath path) {
  if (path == SimdPath::kScalar || vec_dot_fn(type, SimdPath::kAvx2) == nullptr) return nullptr;
  for (size_t i = 0; i < std::size(kPacked); ++i) {
    const PackedKernels& k = kPacked[i];
    if (k.type != type) continue;
    if (path == SimdPath::kAvx512 && cpu_features().has_avx512_vnni()) {
      static std::once_flag checked[std::size(kPacked)];
      static bool trusted[std::size(kPacked)];
      std::call_once(checked[i], [&] { trusted[i] = avx512_kernel_agrees(k.type, k.avx512); });
      if (trusted[i]) return k.avx512;
    }
    return k.avx2;
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
