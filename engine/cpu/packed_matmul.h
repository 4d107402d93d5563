// Matmuls over weights repacked into the x8 layouts of repack.h: the fast path of a CPU backend
// that prepared its weights at load. Results are bit-identical to matmul_rows on the file's
// layout with the scalar reference dot (every path: AVX2 and scalar here), so switching a model
// to packed weights changes no output bit relative to the reference.
#pragma once

#include <cstdint>

#include "engine/core/ggml_type.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/vec_dot.h"

namespace popper::cpu {

// A weight matrix in an x8 layout (not owned). Same shape conventions as WeightMatrix; rows
// come in groups of kPackRows, each group_bytes = kPackRows * row_bytes long.
struct PackedMatrix {
  GgmlType type = GgmlType::Q4_K;
  const uint8_t* data = nullptr;  // [n_out / 8 groups][group_bytes]
  int64_t n_in = 0;
  int64_t n_out = 0;  // a multiple of kPackRows
  int64_t group_bytes = 0;

  // data must hold repack_rows(type, ..., n_in, n_out, data)'s output.
  static PackedMatrix make(GgmlType type, const void* data, int64_t n_in, int64_t n_out);
  // Rows [first_row, first_row + n_rows), both multiples of kPackRows (an expert's slice).
  PackedMatrix rows(int64_t first_row, int64_t n_rows) const;
};

// True when a [n_in, n_out] matrix of `type` can be packed: an x8 layout exists for the type
// and n_out is a multiple of kPackRows.
bool can_pack(GgmlType type, int64_t n_in, int64_t n_out);

// y[t * ldy + o] = dot(w row o, x row t) for every token of x and rows o in [row_begin, row_end)
// (multiples of kPackRows). x in the type's vec_dot_type. `path` picks the kernels (scalar:
// unpack a group and run the scalar dot; the reference behaviour, slow).
void packed_matmul_rows(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                        int64_t row_begin, int64_t row_end, SimdPath path);
inline void packed_matmul_rows(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                               int64_t row_begin, int64_t row_end) {
  packed_matmul_rows(w, x, y, ldy, row_begin, row_end, active_simd_path());
}

// Threaded over row groups (chunks handed out dynamically).
void packed_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy,
                   ThreadPool& pool);

}  // namespace popper::cpu
