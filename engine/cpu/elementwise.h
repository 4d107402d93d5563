// Elementwise ops of the forward pass: the residual add and the SwiGLU gate.
#pragma once

#include <cmath>
#include <cstdint>

namespace popper::cpu {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// x[i] += y[i], n elements (the residual stream).
void add(float* x, const float* y, int64_t n);

// g[i] = silu(g[i]) * u[i], n elements (SwiGLU: the FFN's gate applied to its up projection).
void swiglu(float* g, const float* u, int64_t n);

}  // namespace popper::cpu
