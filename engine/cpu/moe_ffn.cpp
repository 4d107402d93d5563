#include "engine/cpu/moe_ffn.h"

#include <algorithm>
#include <cstring>

#include "engine/cpu/elementwise.h"
#include "engine/cpu/parallel.h"
#include "engine/cpu/swiglu.h"

namespace popper::cpu {
namespace {

// The fused path's conditions: every tensor repacked, gate and up of one type (one quantised
// input), and n_ff whole fused items (each a whole block of the down input's format).
bool fused_applies(const FfnWeights& w) {
  return w.gate->packed() && w.up->packed() && w.down->packed() && w.gate->type() == w.up->type() &&
         w.gate->n_out() % kSwigluChunk == 0;
}

// Unfused: each selected expert's grouped rows quantised, gate and up as matmuls, then
// silu(gate) * up quantised into s.mid.
void unfused_gate_up(const FfnWeights& w, int64_t n_assign, MoeFfnScratch& s, Projector& projector,
                     ThreadPool& pool) {
  const int64_t n_embd = w.gate->n_in();
  const int64_t n_ff = w.gate->n_out();
  s.up.resize(size_t(n_assign * n_ff));
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
}

// Fused (see the header): s.mid[e] holds silu(gate) * up of expert e's rows, quantised for down.
void fused_gate_up(const FfnWeights& w, const float* x, int64_t n_tokens, const int32_t* ids, int64_t k,
                   MoeFfnScratch& s, ThreadPool& pool) {
  const int64_t n_embd = w.gate->n_in();
  const int64_t n_ff = w.gate->n_out();
  const int64_t n_assign = n_tokens * k;
  const GgmlType in_vt = activation_type_of(w.gate->type());
  const GgmlType down_vt = activation_type_of(w.down->type());
  const int64_t n_active = int64_t(s.active_experts.size());
  // The layer's input quantised once; each expert's rows are gathered from it (a one-token step's
  // single row serves every selected expert as it is).
  s.x_all.quantize(x, n_tokens, n_embd, n_embd, in_vt,
                   n_tokens * n_embd * 4 >= kParallelMinWork ? &pool : nullptr);
  if (n_tokens > 1) {
    for (int32_t e : s.active_experts)
      s.x_gate_format[size_t(e)].prepare(s.expert_count[size_t(e)], n_embd, in_vt);
    for (int64_t a = 0; a < n_assign; ++a) {
      const size_t e = size_t(ids[a]);
      std::memcpy(s.x_gate_format[e].mutable_row(s.slot_row[size_t(a)] - s.expert_offset[e]),
                  s.x_all.row(a / k), size_t(s.x_all.row_bytes()));
    }
  }
  for (int32_t e : s.active_experts) s.mid[size_t(e)].prepare(s.expert_count[size_t(e)], n_ff, down_vt);
  const int64_t chunks = n_ff / kSwigluChunk;
  const int64_t work = n_assign * 2 * n_ff * w.gate->row_bytes();
  for_items(pool, work >= kParallelMinWork, n_active * chunks, [&](int64_t begin, int64_t end, int) {
    for (int64_t item = begin; item < end; ++item) {
      const size_t e = size_t(s.active_experts[size_t(item / chunks)]);
      const int64_t r0 = (item % chunks) * kSwigluChunk;
      packed_swiglu_rows(w.gate->packed_rows(int64_t(e)), w.up->packed_rows(int64_t(e)),
                         n_tokens > 1 ? s.x_gate_format[e] : s.x_all,
                         s.gate.data() + s.expert_offset[e] * n_ff, n_ff, r0, r0 + kSwigluChunk, &s.mid[e]);
    }
  });
}

}  // namespace

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
  const bool fused = fused_applies(w);
  if (!fused) s.x.resize(size_t(n_assign * n_embd));
  s.expert_fill.assign(size_t(n_expert), 0);
  for (int64_t a = 0; a < n_assign; ++a) {
    const int64_t e = ids[a];
    const int64_t row = s.expert_offset[size_t(e)] + s.expert_fill[size_t(e)]++;
    s.slot_row[size_t(a)] = row;
    if (!fused) std::memcpy(s.x.data() + row * n_embd, x + (a / k) * n_embd, n_embd * sizeof(float));
  }
  s.gate.resize(size_t(n_assign * n_ff));
  s.down.resize(size_t(n_assign * n_embd));
  if (s.x_gate_format.size() < size_t(n_expert)) {
    s.x_gate_format.resize(size_t(n_expert));
    s.x_up_format.resize(size_t(n_expert));
    s.mid.resize(size_t(n_expert));
  }
  if (fused) {
    fused_gate_up(w, x, n_tokens, ids, k, s, pool);
  } else {
    unfused_gate_up(w, n_assign, s, projector, pool);
  }
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
