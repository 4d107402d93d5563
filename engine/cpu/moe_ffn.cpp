#include "engine/cpu/moe_ffn.h"

#include <algorithm>
#include <cstring>

#include "engine/cpu/elementwise.h"
#include "engine/cpu/parallel.h"

namespace popper::cpu {

void moe_ffn(const FfnWeights& w, const float* x, int64_t n_tokens, const int32_t* ids, const float* weights,
             int64_t k, float* out, MoeFfnScratch& s, Projector& projector, ThreadPool& pool) {
  const int64_t n_expert = w.gate->n_expert();
  const int64_t n_embd = w.gate->n_in();
  const int64_t n_ff = w.gate->n_out();
  const int64_t n_assign = n_tokens * k;

  // Group the (token, slot) assignments by expert.
  s.expert_count.assign(size_t(n_expert), 0);
  for (int64_t a = 0; a < n_assign; ++a) s.expert_count[size_t(ids[a])]++;
  s.expert_offset.assign(size_t(n_expert), 0);
  s.active_experts.clear();
  int64_t off = 0;
  for (int64_t e = 0; e < n_expert; ++e) {
    s.expert_offset[size_t(e)] = off;
    off += s.expert_count[size_t(e)];
    if (s.expert_count[size_t(e)] > 0) s.active_experts.push_back(int32_t(e));
  }
  s.slot_row.resize(size_t(n_assign));
  s.x.resize(size_t(n_assign * n_embd));
  s.expert_fill.assign(size_t(n_expert), 0);
  for (int64_t a = 0; a < n_assign; ++a) {
    const int64_t e = ids[a];
    const int64_t row = s.expert_offset[size_t(e)] + s.expert_fill[size_t(e)]++;
    s.slot_row[size_t(a)] = row;
    std::memcpy(s.x.data() + row * n_embd, x + (a / k) * n_embd, n_embd * sizeof(float));
  }
  s.gate.resize(size_t(n_assign * n_ff));
  s.up.resize(size_t(n_assign * n_ff));
  s.down.resize(size_t(n_assign * n_embd));
  if (s.x_gate_format.size() < size_t(n_expert)) {
    s.x_gate_format.resize(size_t(n_expert));
    s.x_up_format.resize(size_t(n_expert));
    s.mid.resize(size_t(n_expert));
  }
  const GgmlType gate_vt = activation_type_of(w.gate->type());
  const GgmlType up_vt = activation_type_of(w.up->type());
  const GgmlType down_vt = activation_type_of(w.down->type());
  const int64_t n_active = int64_t(s.active_experts.size());
  // Quantising and the SwiGLU product are light: worth threads only for big batches.
  const bool parallel_rows = n_assign * std::max(n_embd, n_ff) * 4 >= kParallelMinWork;

  // Each selected expert's input rows, in its weights' activation formats.
  for_items(pool, parallel_rows, n_active, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t e = size_t(s.active_experts[size_t(i)]);
      const float* xe = s.x.data() + s.expert_offset[e] * n_embd;
      s.x_gate_format[e].quantize(xe, s.expert_count[e], n_embd, n_embd, gate_vt);
      if (up_vt != gate_vt) s.x_up_format[e].quantize(xe, s.expert_count[e], n_embd, n_embd, up_vt);
    }
  });
  // gate and up of every selected expert: one parallel loop, each expert's rows read once.
  s.jobs.clear();
  for (int32_t e : s.active_experts) {
    const int64_t r0 = s.expert_offset[size_t(e)];
    const QuantizedActivations* xe = &s.x_gate_format[size_t(e)];
    s.jobs.push_back({w.gate, e, xe, s.gate.data() + r0 * n_ff});
    s.jobs.push_back({w.up, e, up_vt == gate_vt ? xe : &s.x_up_format[size_t(e)], s.up.data() + r0 * n_ff});
  }
  projector.run(s.jobs, pool);
  // silu(gate) * up, then down.
  for_items(pool, parallel_rows, n_active, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t e = size_t(s.active_experts[size_t(i)]);
      float* g = s.gate.data() + s.expert_offset[e] * n_ff;
      swiglu(g, s.up.data() + s.expert_offset[e] * n_ff, s.expert_count[e] * n_ff);
      s.mid[e].quantize(g, s.expert_count[e], n_ff, n_ff, down_vt);
    }
  });
  s.jobs.clear();
  for (int32_t e : s.active_experts) {
    s.jobs.push_back({w.down, e, &s.mid[size_t(e)], s.down.data() + s.expert_offset[size_t(e)] * n_embd});
  }
  projector.run(s.jobs, pool);
  // Weighted sum in slot order: the same order whatever the batch, so batched prefill and
  // one-token decode give the same bits.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* o = out + t * n_embd;
    for (int64_t slot = 0; slot < k; ++slot) {
      const float wt = weights[t * k + slot];
      const float* d = s.down.data() + s.slot_row[size_t(t * k + slot)] * n_embd;
      if (slot == 0) {
        for (int64_t i = 0; i < n_embd; ++i) o[i] = wt * d[i];
      } else {
        for (int64_t i = 0; i < n_embd; ++i) o[i] += wt * d[i];
      }
    }
  }
}

}  // namespace popper::cpu
