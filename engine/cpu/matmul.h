// Weight-matrix times activation-rows kernels, threaded over output rows.
//
// Conventions follow ggml: a weight matrix [n_in, n_out] has n_out rows of n_in contiguous
// elements (GGUF dims[0] = n_in). Activations are rows of n_in floats; outputs are rows of n_out.
// One path for 1 token (matvec, the decode case) and many (matmul, prefill): the many-token path
// tiles rows so each weight block is read from memory once per batch, not once per token.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/thread_pool.h"

namespace popper::cpu {

// A view of a weight matrix inside a mapped GGUF file (not owned).
struct WeightMatrix {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;  // [n_out rows][row_bytes]
  int64_t n_in = 0;               // elements per row (dims[0])
  int64_t n_out = 0;              // rows (dims[1])
  int64_t row_bytes = 0;          // ggml_row_size(type, n_in)

  static WeightMatrix make(GgmlType type, const void* data, int64_t n_in, int64_t n_out);
  // Rows [first_row, first_row + n_rows) as a matrix of their own (an expert's slice, a
  // split for threads).
  WeightMatrix rows(int64_t first_row, int64_t n_rows) const;
};

// Activation rows converted to a weight type's vec_dot_type. Convert once, use for every
// matrix of that type that reads the same input (Q, K and V projections share one).
class QuantizedActivations {
 public:
  // x: [n_rows, n_cols] f32, row stride ldx floats. Quantises rows in parallel when pool given.
  void quantize(const float* x, int64_t n_rows, int64_t n_cols, int64_t ldx, GgmlType vec_dot_type,
                ThreadPool* pool = nullptr);

  // Shapes the buffer for n_rows x n_cols in vec_dot_type without writing it, for filling piece
  // by piece with quantize_cols (threads may fill disjoint pieces).
  void prepare(int64_t n_rows, int64_t n_cols, GgmlType vec_dot_type);
  // Quantises columns [c0, c1) of row r (c0, c1 multiples of the block size) from src[0, c1 - c0):
  // the same bytes as quantize() writes there, blocks being independent.
  void quantize_cols(int64_t r, int64_t c0, int64_t c1, const float* src);

  GgmlType type() const { return type_; }
  int64_t n_rows() const { return n_rows_; }
  int64_t n_cols() const { return n_cols_; }
  int64_t row_bytes() const { return row_bytes_; }
  const uint8_t* row(int64_t i) const { return bytes_.data() + i * row_bytes_; }
  // For filling rows with bytes quantised elsewhere (a gather of already quantised rows).
  uint8_t* mutable_row(int64_t i) { return bytes_.data() + i * row_bytes_; }

 private:
  GgmlType type_ = GgmlType::F32;
  int64_t n_rows_ = 0;
  int64_t n_cols_ = 0;
  int64_t row_bytes_ = 0;
  std::vector<uint8_t> bytes_;
};

// y[t * ldy + o] = dot(w row o, x row t) for t < x.n_rows(), o < w.n_out.
// x must be in quant_traits(w.type)->vec_dot_type and x.n_cols() == w.n_in.
void matmul(const WeightMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy, ThreadPool& pool);

// Convenience: quantises x ([n_tokens, w.n_in] f32, contiguous) itself, then matmul.
void matmul_f32(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// Single-threaded matmul over output rows [row_begin, row_end) only; the building block the
// threaded versions split work with, and what callers use when they parallelise at a coarser
// level (e.g. over experts).
void matmul_rows(const WeightMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end);

}  // namespace popper::cpu
