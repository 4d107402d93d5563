// Row-interleaved weight layouts for the CPU kernels, built once at load from the GGUF file's
// layout (ggml's own row-major blocks, which the reference path keeps reading).
//
// Why: a dot product per row reads one weight block, unpacks it and reduces it to one float;
// with one row per register the reduction is horizontal (costly) and every activation block is
// re-read per row. In an x8 layout the blocks of 8 consecutive rows are woven together so that
// each 32-bit lane of a vector holds 4 consecutive weights of one row: broadcasting 4 activation
// bytes to all lanes and one maddubs feeds 8 rows at once, the 8 rows' sums stay in 8 lanes (no
// horizontal reduction), and each activation block is read once per 8 rows (ik_llama.cpp's
// "_r4/_r8" repacking is the same idea; the layouts here are Popper's own).
//
// Every packed group is exactly as large as the 8 rows it came from, so a repacked model needs
// no more memory than the file. The packing is lossless: unpack_rows gives the file's bytes back.
//
// Element order inside a packed group of 8 rows (r = 0..7):
//   a "quad" is 4 consecutive weights of one row; the 32-byte vector V holds byte 4r + k = quad
//   of row r. For 4-bit quants one byte carries two weights: low nibble element e, high nibble
//   element e + 16, so a 32-byte vector of nibbles covers elements [32j, 32j + 32) as
//   V_q (q = 0..3): low nibbles elements 32j + 4q + k, high nibbles 32j + 16 + 4q + k.
#pragma once

#include <cstdint>

#include "engine/core/ggml_type.h"
#include "engine/quant/blocks.h"

namespace popper::cpu {

inline constexpr int kPackRows = 8;  // rows interleaved per packed group

// Q4_K x8: one 256-element super-block of 8 rows (8 x 144 bytes).
struct BlockQ4Kx8 {
  uint16_t d[8];          // fp16, row r
  uint16_t dmin[8];       // fp16, row r
  uint8_t scales_lo[64];  // [j * 8 + r]: low 4 bits of sub-block j's scale | low 4 bits of its min << 4
  uint8_t scales_hi[32];  // [(j % 4) * 8 + r]: (scale >> 4) | (min >> 4) << 2, in the low nibble
                          // for j < 4 and the high nibble for j >= 4
  uint8_t qs[1024];       // [j][q][r][k] nibbles, see the header comment (j = 0..7, q = 0..3)
};
static_assert(sizeof(BlockQ4Kx8) == 8 * sizeof(BlockQ4K), "Q4_K x8 must be as large as 8 blocks");

// Q5_K x8: Q4_K x8 plus the fifth bit.
struct BlockQ5Kx8 {
  uint16_t d[8];
  uint16_t dmin[8];
  uint8_t scales_lo[64];
  uint8_t scales_hi[32];
  uint8_t qs[1024];  // as Q4_K x8: the low 4 bits
  uint8_t qh[256];   // [j][r][k] bytes: bit s (s = 0..7) is the fifth bit of the weight that step s
                     // of sub-block j unpacks (s < 4: low nibble of V_s, else high nibble of V_{s-4})
};
static_assert(sizeof(BlockQ5Kx8) == 8 * sizeof(BlockQ5K), "Q5_K x8 must be as large as 8 blocks");

// Q6_K x8: one super-block of 8 rows (8 x 210 bytes). Pairs of 16-element sub-blocks form the
// 32-element chunks c = 0..7 that the nibble layout covers.
struct BlockQ6Kx8 {
  uint16_t d[8];       // fp16, row r
  int8_t scales[128];  // [sub-block * 8 + r]
  uint8_t ql[1024];    // [c][q][r][k] nibbles, as Q4_K x8's qs
  uint8_t qh[512];     // [c][h][r][k] bytes, h = 0..1: 2-bit field f (bits 2f, 2f+1) holds the
                       // high bits of the weight that step 4h + f of chunk c unpacks
};
static_assert(sizeof(BlockQ6Kx8) == 8 * sizeof(BlockQ6K), "Q6_K x8 must be as large as 8 blocks");

// Q8_0 x8: one 32-element block of 8 rows (8 x 34 bytes).
struct BlockQ8_0x8 {
  uint16_t d[8];   // fp16, row r
  int8_t qs[256];  // [s][r][k]: weight 4s + k of row r (s = 0..7)
};
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0), "Q8_0 x8 must be as large as 8 blocks");

// True when `type` has an x8 layout and kernels for it.
bool has_packed_layout(GgmlType type);

// Weaves rows [0, n_rows) of a row-major matrix (n_in elements per row, n_rows a multiple of
// kPackRows) into dst: group g (rows 8g..8g+7) is n_in / block_size packed blocks, contiguous.
// dst holds n_rows * ggml_row_size(type, n_in) bytes and must not overlap src.
void repack_rows(GgmlType type, const void* src, int64_t n_in, int64_t n_rows, void* dst);

// The inverse: the file's bytes back from a packed matrix (for the reference path and tests).
void unpack_rows(GgmlType type, const void* src, int64_t n_in, int64_t n_rows, void* dst);

}  // namespace popper::cpu
