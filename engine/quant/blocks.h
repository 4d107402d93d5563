// Block layouts of the quantised tensor types Popper computes with, bit-exact with ggml
// (ggml-common.h). QK_K = 256. Each struct's size is pinned by static_assert so a layout slip
// fails to compile rather than corrupting files.
//
// fp16 fields are stored as raw uint16_t bits (engine/core/fp16.h converts).
#pragma once

#include <cstdint>

namespace popper {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleSize = 12;  // K_SCALE_SIZE: 8 6-bit scales + 8 6-bit mins

// Q8_0: 32 int8 weights, one fp16 scale. x = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 must match ggml's block_q8_0");

// Q4_K: 8 sub-blocks of 32; each has a 6-bit scale and 6-bit min packed in `scales`
// (see get_scale_min_k4). x = d * sc * q - dmin * m, q in [0, 15].
// qs holds 4-bit values: byte j of 32-byte group g holds element g*64+j (low nibble) and
// g*64+32+j (high nibble).
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4K) == 144, "BlockQ4K must match ggml's block_q4_K");

// Q5_K: Q4_K plus a fifth bit per weight in qh. x = d * sc * q - dmin * m, q in [0, 31].
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5K) == 176, "BlockQ5K must match ggml's block_q5_K");

// Q6_K: 16 sub-blocks of 16 with int8 scales. x = d * sc * (q - 32), q in [0, 63]:
// low 4 bits in ql, high 2 bits in qh.
struct BlockQ6K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6K) == 210, "BlockQ6K must match ggml's block_q6_K");

// Q8_K: the activation format the k-quant dot products consume. float scale, 256 int8, and
// per-16 sums of qs (bsums) so the min terms cost one multiply per sub-block.
struct BlockQ8K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8K) == 292, "BlockQ8K must match ggml's block_q8_K");

// Unpacks the j-th (0..7) 6-bit scale and min of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

}  // namespace popper
