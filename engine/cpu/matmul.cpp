#include "engine/cpu/matmul.h"

#include <algorithm>

#include "engine/core/result.h"
#include "engine/cpu/vec_dot.h"
#include "engine/quant/traits.h"

namespace popper::cpu {
namespace {

// Tile sizes for the many-token path. A tile of weight rows (about kWeightTileBytes) stays in
// L1/L2 while a tile of activation rows (about kTokenTileBytes, in L2) streams past it, so each
// weight byte comes from memory once per token tile instead of once per token.
constexpr int64_t kWeightTileBytes = 16 * 1024;
constexpr int64_t kTokenTileBytes = 256 * 1024;
// Output rows per parallel_for chunk: about this many chunks per thread, so the dynamic
// hand-out evens out threads that are slowed (another process, a busier core).
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kMinRowsPerChunk = 8;

}  // namespace

WeightMatrix WeightMatrix::make(GgmlType type, const void* data, int64_t n_in, int64_t n_out) {
  const auto& info = ggml_type_info(type);
  POPPER_CHECK(n_in % info.block_size == 0, "n_in ", n_in, " is not a multiple of ", info.name,
               "'s block size");
  WeightMatrix w;
  w.type = type;
  w.data = static_cast<const uint8_t*>(data);
  w.n_in = n_in;
  w.n_out = n_out;
  w.row_bytes = ggml_row_size(type, n_in);
  return w;
}

WeightMatrix WeightMatrix::rows(int64_t first_row, int64_t n_rows) const {
  POPPER_CHECK(first_row >= 0 && n_rows >= 0 && first_row + n_rows <= n_out, "rows [", first_row, ", ",
               first_row + n_rows, ") of a matrix with ", n_out);
  WeightMatrix w = *this;
  w.data = data + first_row * row_bytes;
  w.n_out = n_rows;
  return w;
}

void QuantizedActivations::quantize(const float* x, int64_t n_rows, int64_t n_cols, int64_t ldx,
                                    GgmlType vec_dot_type, ThreadPool* pool) {
  const ActivationQuantizeFn fn = activation_quantize_fn(vec_dot_type);
  POPPER_CHECK(fn != nullptr, "no activation quantiser for ", ggml_type_name(vec_dot_type));
  POPPER_CHECK(n_cols % ggml_type_info(vec_dot_type).block_size == 0, "n_cols ", n_cols);
  type_ = vec_dot_type;
  n_rows_ = n_rows;
  n_cols_ = n_cols;
  row_bytes_ = ggml_row_size(vec_dot_type, n_cols);
  bytes_.resize(static_cast<size_t>(n_rows * row_bytes_));  // keeps capacity across calls
  auto work = [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) fn(x + r * ldx, bytes_.data() + r * row_bytes_, n_cols);
  };
  if (pool != nullptr && n_rows > 1) {
    pool->parallel_for(n_rows, std::max<int64_t>(1, n_rows / (pool->size() * kChunksPerThread)), work);
  } else {
    work(0, n_rows, 0);
  }
}

void QuantizedActivations::prepare(int64_t n_rows, int64_t n_cols, GgmlType vec_dot_type) {
  POPPER_CHECK(n_cols % ggml_type_info(vec_dot_type).block_size == 0, "n_cols ", n_cols);
  type_ = vec_dot_type;
  n_rows_ = n_rows;
  n_cols_ = n_cols;
  row_bytes_ = ggml_row_size(vec_dot_type, n_cols);
  bytes_.resize(static_cast<size_t>(n_rows * row_bytes_));
}

void QuantizedActivations::quantize_cols(int64_t r, int64_t c0, int64_t c1, const float* src) {
  const int64_t block = ggml_type_info(type_).block_size;
  POPPER_CHECK(
      r >= 0 && r < n_rows_ && c0 % block == 0 && c1 % block == 0 && 0 <= c0 && c0 <= c1 && c1 <= n_cols_,
      "quantize_cols row ", r, " [", c0, ", ", c1, ")");
  const ActivationQuantizeFn fn = activation_quantize_fn(type_);
  fn(src, bytes_.data() + r * row_bytes_ + ggml_row_size(type_, c0), c1 - c0);
}

void matmul_rows(const WeightMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end) {
  const QuantTraits* traits = quant_traits(w.type);
  POPPER_CHECK(traits != nullptr, "no kernels for ", ggml_type_name(w.type));
  POPPER_CHECK(x.type() == traits->vec_dot_type, "activations are ", ggml_type_name(x.type()), ", ",
               ggml_type_name(w.type), " wants ", ggml_type_name(traits->vec_dot_type));
  POPPER_CHECK(x.n_cols() == w.n_in, "activations have ", x.n_cols(), " columns, weights ", w.n_in);
  POPPER_CHECK(row_begin >= 0 && row_end <= w.n_out, "rows [", row_begin, ", ", row_end, ") of ", w.n_out);
  const VecDotFn dot = vec_dot_fn(w.type);
  const VecDotMultiFn multi = vec_dot_multi_fn(w.type);
  const int64_t n_tokens = x.n_rows();
  const int64_t n = w.n_in;
  if (n_tokens == 1) {
    const uint8_t* a = x.row(0);
    for (int64_t r = row_begin; r < row_end; ++r) y[r] = dot(n, w.data + r * w.row_bytes, a);
    return;
  }
  const int64_t row_tile = std::max<int64_t>(1, kWeightTileBytes / w.row_bytes);
  const int64_t token_tile = std::max<int64_t>(1, kTokenTileBytes / std::max<int64_t>(1, x.row_bytes()));
  for (int64_t t0 = 0; t0 < n_tokens; t0 += token_tile) {
    const int64_t t1 = std::min(n_tokens, t0 + token_tile);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += row_tile) {
      const int64_t r1 = std::min(row_end, r0 + row_tile);
      int64_t t = t0;
      if (multi != nullptr) {
        // Groups of kVecDotTokens tokens share each weight block's unpacking.
        for (; t + kVecDotTokens <= t1; t += kVecDotTokens) {
          const void* a[kVecDotTokens];
          for (int k = 0; k < kVecDotTokens; ++k) a[k] = x.row(t + k);
          for (int64_t r = r0; r < r1; ++r) {
            float out[kVecDotTokens];
            multi(n, w.data + r * w.row_bytes, a, out);
            for (int k = 0; k < kVecDotTokens; ++k) y[(t + k) * ldy + r] = out[k];
          }
        }
      }
      for (; t < t1; ++t) {
        const uint8_t* a = x.row(t);
        float* yt = y + t * ldy;
        for (int64_t r = r0; r < r1; ++r) yt[r] = dot(n, w.data + r * w.row_bytes, a);
      }
    }
  }
}

void matmul(const WeightMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy, ThreadPool& pool) {
  const int64_t grain = std::max<int64_t>(kMinRowsPerChunk, w.n_out / (pool.size() * kChunksPerThread));
  pool.parallel_for(w.n_out, grain,
                    [&](int64_t begin, int64_t end, int) { matmul_rows(w, x, y, ldy, begin, end); });
}

void matmul_f32(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  thread_local QuantizedActivations qx;  // reused buffer: no allocation per decode step
  qx.quantize(x, n_tokens, w.n_in, w.n_in, quant_traits(w.type)->vec_dot_type, &pool);
  matmul(w, qx, y, w.n_out, pool);
}

}  // namespace popper::cpu
