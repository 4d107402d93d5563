// The per-path kernel sets behind vec_dot_fn() and activation_quantize_fn() (vec_dot.h).
// Internal to engine/cpu, falsifiers and benchmarks; everything else goes through vec_dot.h.
//
// Every dot takes n (elements, a multiple of the block size), a weight row w and an activation
// row a already in the weight type's vec_dot_type. Pointers need no alignment.
#pragma once

#include <cstdint>

namespace popper::cpu {

struct KvHeadView;  // flash_attention.h

namespace scalar {
float vec_dot_f32(int64_t n, const void* w, const void* a);
float vec_dot_f16(int64_t n, const void* w, const void* a);
float vec_dot_bf16(int64_t n, const void* w, const void* a);
float vec_dot_q8_0(int64_t n, const void* w, const void* a);  // a: Q8_0
float vec_dot_q4_k(int64_t n, const void* w, const void* a);  // a: Q8_K
float vec_dot_q5_k(int64_t n, const void* w, const void* a);  // a: Q8_K
float vec_dot_q6_k(int64_t n, const void* w, const void* a);  // a: Q8_K
}  // namespace scalar

// AVX2 + FMA + F16C, defined in *_avx2.cpp (the only files compiled with those flags). Call
// only when cpu_features().has_avx2_fma().
namespace avx2 {
float vec_dot_f32(int64_t n, const void* w, const void* a);
float vec_dot_f16(int64_t n, const void* w, const void* a);
float vec_dot_bf16(int64_t n, const void* w, const void* a);
float vec_dot_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_k(int64_t n, const void* w, const void* a);
float vec_dot_q5_k(int64_t n, const void* w, const void* a);
float vec_dot_q6_k(int64_t n, const void* w, const void* a);

// One weight row against 4 activation rows a[0..3], unpacking each weight block once:
// out[t] is bit-identical to vec_dot_q*_k(n, w, a[t]). For prefill (matmul_rows).
void vec_dot_q4_k_x4(int64_t n, const void* w, const void* const* a, float* out);
void vec_dot_q6_k_x4(int64_t n, const void* w, const void* const* a, float* out);

// Bit-identical to quant::quantize_row_q8_k_ref / quantize_row_q8_0_ref (same rounding, same
// scale arithmetic), only vectorised: the decode step quantises every activation row.
void quantize_row_q8_k(const float* src, void* dst, int64_t n);
void quantize_row_q8_0(const float* src, void* dst, int64_t n);

// Packed-layout (repack.h) matmuls: n_groups groups of 8 weight rows, group g at
// w + g * group_bytes (n / block_size x8 blocks), against n_tokens activation rows in the type's
// vec_dot_type, token t at a + t * a_stride. Writes y[t * ldy + 8 * g + r]. Each output is
// bit-identical to scalar::vec_dot_*(n, file row 8g + r, a row t).
void packed_gemm_q4_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q5_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q6_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q8_0(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);

// flash_attention.h's attention_head_group on AVX2 + FMA + F16C.
void attention_head_group(const float* q, int64_t n_q, const KvHeadView& kv, int64_t n_kv, float scale,
                          float* out);

// Sums `bytes` (a multiple of 128) starting at p with 256-bit loads; the result only defeats
// dead-code elimination. For the bandwidth probe.
uint64_t read_stream(const uint8_t* p, int64_t bytes);
}  // namespace avx2

// AVX-512 F + BW + VL + VNNI, defined in *_avx512.cpp. Call only when
// cpu_features().has_avx512_vnni(). Same contracts as the avx2:: packed kernels (bit-identical
// to the scalar reference).
namespace avx512 {
void packed_gemm_q4_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q5_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q6_k(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
void packed_gemm_q8_0(int64_t n, const uint8_t* w, int64_t group_bytes, int64_t n_groups, const uint8_t* a,
                      int64_t a_stride, int64_t n_tokens, float* y, int64_t ldy);
}  // namespace avx512

}  // namespace popper::cpu
