// Helpers shared by the k-quant reference quantisers (Q4_K, Q5_K, Q6_K, Q8_K): the integer
// rounding and the scale searches of ggml-quants.c (nearest_int, make_qkx2_quants,
// make_qx_quants). Same arithmetic in the same order, so the bytes match ggml's *_ref output.
#pragma once

#include <cstdint>
#include <cstring>

namespace popper::quant {

// ggml's group-max threshold below which a group counts as all zero (GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, by the 1.5 * 2^23 trick (ggml's nearest_int). Valid for
// |x| <= 4194303.
inline int nearest_int(float x) {
  const float biased = x + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// Fits x[i] ~ scale * L[i] - the_min with L in [0, nmax], weighted least squares over a grid
// of nstep+1 candidate inverse scales (rmin + rdelta * is + nmax) / (max - min).
// Returns the scale; *the_min receives the (non-negative) min. Laux is scratch of n bytes.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// Fits x[i] ~ scale * (L[i] - nmax) with L in [0, 2 nmax - 1], the symmetric search with
// rmse_type 1 (weights x^2) and no importance weights. Returns the scale.
float make_qx_quants_rmse1(int n, int nmax, const float* x, int8_t* L);

// One 256-value super-block of Q4_K / Q5_K as ggml's quantize_row_q{4,5}_K_ref makes it: per
// 32-value sub-block a make_qkx2_quants fit (weights av_x + |x|, search rmin, rdelta, nstep),
// the 8 scales and mins coded in 6 bits against the largest, then every value re-rounded
// against the coded scale and min. Writes the fp16 bits of d and dmin, the 12 packed scale
// bytes and the levels L[256] in [0, nmax]; the caller packs L into its bit layout.
void quantize_superblock_k4(const float* x, int nmax, float rmin, float rdelta, int nstep, uint16_t* d,
                            uint16_t* dmin, uint8_t* scales, uint8_t* L);

// Packs 8 six-bit scales and 8 six-bit mins into the 12-byte layout get_scale_min_k4 reads.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* scales);

}  // namespace popper::quant
