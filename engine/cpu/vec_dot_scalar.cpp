// Scalar reference dot products: one weight row times one activation row. The integer part of
// every quantised product is summed exactly per block (int32), then scaled in float; the SIMD
// paths must reproduce the integers and differ only in float summation order.
#include <cstring>

#include "engine/core/fp16.h"
#include "engine/cpu/kernels.h"
#include "engine/quant/blocks.h"

namespace popper::cpu::scalar {

namespace {

// A row of float-like weights (f32, f16, bf16; widen converts one element) dotted with f32
// activations, summed in order.
template <class T, float (*widen)(T)>
float dot_float_row(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const T*>(w);
  const auto* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += widen(x[i]) * y[i];
  return sum;
}

float identity(float v) { return v; }

}  // namespace

float vec_dot_f32(int64_t n, const void* w, const void* a) { return dot_float_row<float, identity>(n, w, a); }
float vec_dot_f16(int64_t n, const void* w, const void* a) {
  return dot_float_row<uint16_t, fp16_to_f32>(n, w, a);
}
float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  return dot_float_row<uint16_t, bf16_to_f32>(n, w, a);
}

float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sum += sumi * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
  }
  return sum;
}

namespace {

// Unpacks a Q4_K/Q5_K block's 6-bit scales and mins.
void unpack_scales_mins(const uint8_t* packed, int* sc, int* m) {
  for (int j = 0; j < 8; ++j) {
    uint8_t s, mm;
    get_scale_min_k4(j, packed, &s, &mm);
    sc[j] = s;
    m[j] = mm;
  }
}

// Sum over sub-blocks of min_j * (sum of the 32 activations of sub-block j), from bsums.
int min_term(const int* m, const int16_t* bsums) {
  int sum = 0;
  for (int j = 0; j < 8; ++j) sum += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return sum;
}

}  // namespace

namespace {

// Q4_K and Q5_K share the block structure; Q5_K adds the fifth bit from qh (bit 2g of qh[l]
// for element 64g+l, bit 2g+1 for element 64g+32+l).
template <class Block, bool kHasHighBit>
float dot_k4_family(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8K*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int sc[8], m[8];
    unpack_scales_mins(x[i].scales, sc, m);
    const uint8_t* q = x[i].qs;
    const int8_t* q8 = y[i].qs;
    int sumi = 0;
    for (int g = 0; g < 4; ++g, q += 32, q8 += 64) {
      int lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        int q_lo = q[l] & 0xF, q_hi = q[l] >> 4;
        if constexpr (kHasHighBit) {
          q_lo |= ((x[i].qh[l] >> (2 * g)) & 1) << 4;
          q_hi |= ((x[i].qh[l] >> (2 * g + 1)) & 1) << 4;
        }
        lo += q_lo * q8[l];
        hi += q_hi * q8[l + 32];
      }
      sumi += sc[2 * g] * lo + sc[2 * g + 1] * hi;
    }
    const float d = fp16_to_f32(x[i].d) * y[i].d;
    const float dmin = fp16_to_f32(x[i].dmin) * y[i].d;
    sum += d * sumi - dmin * min_term(m, y[i].bsums);
  }
  return sum;
}

}  // namespace

float vec_dot_q4_k(int64_t n, const void* w, const void* a) {
  return dot_k4_family<BlockQ4K, false>(n, w, a);
}
float vec_dot_q5_k(int64_t n, const void* w, const void* a) { return dot_k4_family<BlockQ5K, true>(n, w, a); }

float vec_dot_q6_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6K*>(w);
  const auto* y = static_cast<const BlockQ8K*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    const int8_t* q8 = y[i].qs;
    int sumi = 0;
    for (int g = 0; g < 2; ++g, ql += 64, qh += 32, sc += 8, q8 += 128) {
      int part[8] = {};  // per 16-element sub-block
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        part[is + 0] += q1 * q8[l];
        part[is + 2] += q2 * q8[l + 32];
        part[is + 4] += q3 * q8[l + 64];
        part[is + 6] += q4 * q8[l + 96];
      }
      for (int k = 0; k < 8; ++k) sumi += sc[k] * part[k];
    }
    sum += fp16_to_f32(x[i].d) * y[i].d * sumi;
  }
  return sum;
}

}  // namespace popper::cpu::scalar
