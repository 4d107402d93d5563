#include "engine/cpu/ffn.h"

#include "engine/cpu/elementwise.h"

namespace popper::cpu {

void dense_ffn(const FfnWeights& w, const float* x, int64_t n_tokens, float* out, DenseFfnScratch& scratch,
               Projector& projector, ThreadPool& pool) {
  const int64_t n_ff = w.gate->n_out();
  scratch.gate.resize(size_t(n_tokens * n_ff));
  scratch.up.resize(size_t(n_tokens * n_ff));
  const Projector::Output gate_up[2] = {{w.gate, scratch.gate.data()}, {w.up, scratch.up.data()}};
  projector.project(gate_up, x, n_tokens, pool);
  swiglu(scratch.gate.data(), scratch.up.data(), n_tokens * n_ff);
  const Projector::Output down{w.down, out};
  projector.project({&down, 1}, scratch.gate.data(), n_tokens, pool);
}

}  // namespace popper::cpu
