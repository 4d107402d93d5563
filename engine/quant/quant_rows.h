// Per-type row functions behind the traits table (engine/quant/traits.h). Each is the scalar
// reference: bit-exact with ggml's dequantize_row_* / quantize_row_*_ref (ggml-quants.c).
// Callers normally go through quant_traits(); tests and the SIMD layer call these directly.
//
// n is the element count (a multiple of the type's block size); src/dst are block arrays.
#pragma once

#include <cstdint>

namespace popper::quant {

void dequantize_row_f32(const void* src, float* dst, int64_t n);
void quantize_row_f32(const float* src, void* dst, int64_t n);
void dequantize_row_f16(const void* src, float* dst, int64_t n);
void quantize_row_f16(const float* src, void* dst, int64_t n);
void dequantize_row_bf16(const void* src, float* dst, int64_t n);
void quantize_row_bf16(const float* src, void* dst, int64_t n);

void dequantize_row_q8_0(const void* src, float* dst, int64_t n);
void quantize_row_q8_0_ref(const float* src, void* dst, int64_t n);

void dequantize_row_q4_k(const void* src, float* dst, int64_t n);
void quantize_row_q4_k_ref(const float* src, void* dst, int64_t n);

void dequantize_row_q5_k(const void* src, float* dst, int64_t n);
void quantize_row_q5_k_ref(const float* src, void* dst, int64_t n);

void dequantize_row_q6_k(const void* src, float* dst, int64_t n);
void quantize_row_q6_k_ref(const float* src, void* dst, int64_t n);

void dequantize_row_q8_k(const void* src, float* dst, int64_t n);
void quantize_row_q8_k_ref(const float* src, void* dst, int64_t n);

}  // namespace popper::quant
