// Matmuls of prepared weights against activation rows, scheduled as one parallel loop: the CPU
// backend's projections (Q/K/V, attention output, the output matrix), the router, the dense FFN
// and the expert matmuls all run through a Projector.
//
// Work is split by weight bytes into items of about kChunkWeightBytes, many more than threads,
// handed out dynamically by the pool; a call with little work (below kParallelMinWork) runs on the
// calling thread. Every output row is computed on its own, so the split never changes a result.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "engine/core/thread_pool.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/prepared_weight.h"

namespace popper::cpu {

// One matmul: rows [0, w->n_out()) of expert `expert` of w against x (in w's activation format,
// w->n_in() columns), into y ([x->n_rows(), w->n_out()]).
struct MatmulJob {
  const PreparedWeight* w;
  int64_t expert;
  const QuantizedActivations* x;
  float* y;
};

// The activation format a weight type's dot products read (quant_traits' vec_dot_type).
GgmlType activation_type_of(GgmlType weight_type);

class Projector {
 public:
  Projector();

  // y = x · w^T for a one-expert weight w: y [n_tokens, w->n_out()].
  struct Output {
    const PreparedWeight* w;
    float* y;
  };
  // Every output of one input x ([n_tokens, n_in] f32; every w has n_in columns). x is converted
  // once per activation format and shared by the outputs of that format (Q, K and V read one).
  void project(std::span<const Output> outs, const float* x, int64_t n_tokens, ThreadPool& pool);

  // Every job's rows as one parallel loop over (job, row chunk): one pool dispatch however many
  // matrices (every selected expert's gate and up, say).
  void run(std::span<const MatmulJob> jobs, ThreadPool& pool);

 private:
  const QuantizedActivations& activations_for(GgmlType weight_type, const float* x, int64_t n_rows,
                                              int64_t n_cols, ThreadPool& pool);

  // Scratch of project(), reused across calls: x in each activation format the call needs (slot i
  // holds format activation_types_[i]), and the call's jobs.
  std::vector<QuantizedActivations> activations_;
  std::vector<GgmlType> activation_types_;
  std::vector<MatmulJob> jobs_;
  // Scratch of run(): (job, first row) of each work item.
  std::vector<std::pair<int64_t, int64_t>> items_;
};

}  // namespace popper::cpu
