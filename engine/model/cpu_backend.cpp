#include "engine/model/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>

#include "engine/model/router.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

// Weight bytes per work item: big enough to amortise the dispatch, small enough that a decode
// matvec splits into many more items than threads (the pool balances them dynamically).
constexpr int64_t kChunkWeightBytes = 32 * 1024;

GgmlType vec_dot_type_of(GgmlType weight_type) {
  const QuantTraits* t = quant_traits(weight_type);
  POPPER_CHECK(t != nullptr, "no kernels for ", ggml_type_name(weight_type), " (the loader checks this)");
  return t->vec_dot_type;
}

constexpr size_t kMaxActivationFormats = 4;

// Below about this much work (weight bytes x token rows, or elements touched) an op runs on
// the calling thread: a pool dispatch costs microseconds when cores are free and whole
// scheduler slices when they are oversubscribed, more than a small op itself.
constexpr int64_t kParallelMinWork = int64_t(1) << 20;

// A cache line, and the widest vector any kernel loads.
constexpr size_t kBufferAlignment = 64;

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads) {
  // project() holds pointers into act_ while adding slots: size it for every activation format
  // (f32, q8_0, q8_K) up front so it never reallocates.
  act_.resize(kMaxActivationFormats);
  scores_.resize(pool_.size());
  group_q_.resize(pool_.size());
}

Result<void*> CpuBackend::allocate(size_t bytes) {
  void* p = ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t{kBufferAlignment}, std::nothrow);
  if (p == nullptr) return make_error("out of host memory: ", bytes, " bytes asked for");
  return p;
}
void CpuBackend::deallocate(void* p) { ::operator delete(p, std::align_val_t{kBufferAlignment}); }
void CpuBackend::upload(void* dst, const void* host, size_t bytes) {
  if (bytes != 0) std::memcpy(dst, host, bytes);
}
void CpuBackend::download(void* host, const void* src, size_t bytes) {
  if (bytes != 0) std::memcpy(host, src, bytes);
}

void CpuBackend::embed(const WeightMatrix& table, const int32_t* tokens, int64_t n_tokens, float* x) {
  const QuantTraits* t = quant_traits(table.type);
  POPPER_CHECK(t != nullptr, "token_embd type");
  for (int64_t i = 0; i < n_tokens; ++i) {
    POPPER_DCHECK(tokens[i] >= 0 && tokens[i] < table.n_out, "token ", tokens[i]);
    t->dequantize_row(table.data + int64_t(tokens[i]) * table.row_bytes, x + i * table.n_in, table.n_in);
  }
}

void CpuBackend::rmsnorm(const float* x, const NormWeight& w, int64_t n_rows, float eps, float* y) {
  const int64_t n = w.n;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    // Sum of squares in double, as ggml's rms_norm does (ggml_float).
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(xr[i]) * double(xr[i]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / double(n)) + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * w.data[i];
  }
}

cpu::QuantizedActivations& CpuBackend::activations_for(GgmlType weight_type, const float* x, int64_t n_rows,
                                                       int64_t n_cols) {
  const GgmlType want = vec_dot_type_of(weight_type);
  for (size_t i = 0; i < act_type_.size(); ++i) {
    if (act_type_[i] == want) return act_[i];
  }
  POPPER_CHECK(act_type_.size() < act_.size(), "more activation formats than slots");
  act_type_.push_back(want);
  cpu::QuantizedActivations& a = act_[act_type_.size() - 1];
  a.quantize(x, n_rows, n_cols, n_cols, want, n_rows * n_cols * 4 >= kParallelMinWork ? &pool_ : nullptr);
  return a;
}

void CpuBackend::run_matmuls(const std::vector<MatmulJob>& jobs) {
  int64_t work = 0;
  for (const MatmulJob& job : jobs) work += job.w.row_bytes * job.w.n_out * job.x->n_rows();
  if (work < kParallelMinWork) {
    for (const MatmulJob& job : jobs) cpu::matmul_rows(job.w, *job.x, job.y, job.w.n_out, 0, job.w.n_out);
    return;
  }
  chunks_.clear();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const WeightMatrix& w = jobs[j].w;
    const int64_t rows = std::max<int64_t>(1, kChunkWeightBytes / std::max<int64_t>(1, w.row_bytes));
    for (int64_t r = 0; r < w.n_out; r += rows) chunks_.emplace_back(int64_t(j), r);
  }
  pool_.parallel_for(int64_t(chunks_.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      const MatmulJob& job = jobs[chunks_[c].first];
      const int64_t r0 = chunks_[c].second;
      const int64_t rows = std::max<int64_t>(1, kChunkWeightBytes / std::max<int64_t>(1, job.w.row_bytes));
      cpu::matmul_rows(job.w, *job.x, job.y, job.w.n_out, r0, std::min(job.w.n_out, r0 + rows));
    }
  });
}

void CpuBackend::project(std::span<const Projection> outs, const float* x, int64_t n_tokens) {
  act_type_.clear();
  jobs_.clear();
  for (const Projection& p : outs) {
    const cpu::QuantizedActivations& a = activations_for(p.w->type, x, n_tokens, p.w->n_in);
    jobs_.push_back({*p.w, &a, p.y});
  }
  run_matmuls(jobs_);
}

void CpuBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0,
                      float freq_base) {
  // theta for pair i is pos * base^(-2i/d), built by repeated multiplication in float as ggml's
  // rope does (theta_scale = powf(base, -2/d)), so positions agree with llama.cpp's tables.
  const int64_t half = head_dim / 2;
  const float theta_scale = std::pow(freq_base, -2.0f / float(head_dim));
  norm_buf_.resize(2 * half);
  float* cos_t = norm_buf_.data();
  float* sin_t = cos_t + half;
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = float(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      cos_t[i] = std::cos(theta);
      sin_t[i] = std::sin(theta);
      theta *= theta_scale;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos_t[i] - b * sin_t[i];
        v[i + half] = a * sin_t[i] + b * cos_t[i];
      }
    }
  }
}

Status CpuBackend::store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                            const float* v) {
  return cache.store(il, pos0, n_tokens, k, v);
}

void CpuBackend::attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                           const AttentionShape& s, float* out) {
  const int64_t group = s.n_head / s.n_head_kv;
  const GgmlType kv_type = cache.ggml_type();
  const int64_t capacity = cache.capacity();
  // One work item per (token, kv head): the group's query heads share the keys, so their scores
  // are one small matmul against the contiguous [positions, head_dim] key block.
  const int64_t n_items = n_tokens * s.n_head_kv;
  const int64_t work = n_tokens * (pos0 + n_tokens) * s.n_head * s.head_dim * cache.elem_bytes();
  auto body = [&](int64_t begin, int64_t end, int tid) {
    std::vector<float>& scores = scores_[tid];
    cpu::QuantizedActivations& qa = group_q_[tid];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / s.n_head_kv;
      const int64_t kvh = item % s.n_head_kv;
      const int64_t n_kv = pos0 + t + 1;  // causal: positions [0, pos0 + t]
      scores.resize(size_t(group * n_kv));
      const float* qg = q + (t * s.n_head + kvh * group) * s.head_dim;  // [group, head_dim]
      qa.quantize(qg, group, s.head_dim, s.head_dim, GgmlType::F32);
      const WeightMatrix keys = WeightMatrix::make(kv_type, cache.k_head(il, kvh), s.head_dim, capacity);
      cpu::matmul_rows(keys, qa, scores.data(), n_kv, 0, n_kv);  // scores[g, j] = q_g . k_j
      for (int64_t g = 0; g < group; ++g) {
        float* sc = scores.data() + g * n_kv;
        float max = -INFINITY;
        for (int64_t j = 0; j < n_kv; ++j) {
          sc[j] *= s.scale;
          max = std::max(max, sc[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n_kv; ++j) {
          sc[j] = std::exp(sc[j] - max);
          sum += sc[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < n_kv; ++j) sc[j] *= inv;
      }
      // out[g, i] = sum_j p[g, j] v_j[i]: the transposed V block of this kv head is a matrix of
      // head_dim rows over the first n_kv positions (row stride: the capacity), so the whole
      // group reads each V row once.
      WeightMatrix values;
      values.type = kv_type;
      values.data = cache.v_row(il, kvh * s.head_dim);
      values.n_in = n_kv;
      values.n_out = s.head_dim;
      values.row_bytes = capacity * cache.elem_bytes();
      qa.quantize(scores.data(), group, n_kv, n_kv, GgmlType::F32);
      cpu::matmul_rows(values, qa, out + (t * s.n_head + kvh * group) * s.head_dim, s.head_dim, 0, s.head_dim);
    }
  };
  if (work < kParallelMinWork) {
    body(0, n_items, 0);
  } else {
    pool_.parallel_for(n_items, 1, body);
  }
}

void CpuBackend::moe_route(const WeightMatrix& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
                           float* weights) {
  const int64_t n_expert = gate_inp.n_out;
  router_logits_.resize(size_t(n_tokens * n_expert));
  const Projection p{&gate_inp, router_logits_.data()};
  project({&p, 1}, x, n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* probs = router_logits_.data() + t * n_expert;
    router_softmax(probs, n_expert, probs);
    router_top_k(probs, n_expert, k, ids + t * k, weights + t * k);
  }
}

void CpuBackend::moe_ffn(const LayerWeights& L, const float* x, int64_t n_tokens, const int32_t* ids,
                         const float* weights, int64_t k, float* out) {
  const int64_t n_expert = L.ffn_gate_exps.n_expert;
  const int64_t n_embd = L.ffn_gate_exps.all.n_in;
  const int64_t n_ff = L.ffn_gate_exps.n_out;
  const int64_t n_assign = n_tokens * k;

  // Group the (token, slot) assignments by expert: expert e owns rows
  // [expert_offset_[e], expert_offset_[e] + expert_count_[e]) of the grouped buffers.
  expert_count_.assign(n_expert, 0);
  for (int64_t a = 0; a < n_assign; ++a) expert_count_[ids[a]]++;
  expert_offset_.assign(n_expert, 0);
  active_experts_.clear();
  int64_t off = 0;
  for (int64_t e = 0; e < n_expert; ++e) {
    expert_offset_[e] = off;
    off += expert_count_[e];
    if (expert_count_[e] > 0) active_experts_.push_back(int32_t(e));
  }
  slot_row_.resize(n_assign);
  moe_x_.resize(size_t(n_assign * n_embd));
  {
    std::vector<int64_t>& fill = expert_count_;  // reused as a fill cursor
    std::fill(fill.begin(), fill.end(), 0);
    for (int64_t a = 0; a < n_assign; ++a) {
      const int64_t e = ids[a];
      const int64_t row = expert_offset_[e] + fill[e]++;
      slot_row_[a] = row;
      std::memcpy(moe_x_.data() + row * n_embd, x + (a / k) * n_embd, n_embd * sizeof(float));
    }
  }
  moe_gate_.resize(size_t(n_assign * n_ff));
  moe_up_.resize(size_t(n_assign * n_ff));
  moe_down_.resize(size_t(n_assign * n_embd));
  if (moe_act_in_.size() < size_t(n_expert)) {
    moe_act_in_.resize(n_expert);
    moe_act_up_.resize(n_expert);
    moe_act_mid_.resize(n_expert);
  }
  const GgmlType gate_vt = vec_dot_type_of(L.ffn_gate_exps.all.type);
  const GgmlType up_vt = vec_dot_type_of(L.ffn_up_exps.all.type);
  const GgmlType down_vt = vec_dot_type_of(L.ffn_down_exps.all.type);
  const int64_t n_active = int64_t(active_experts_.size());
  // Quantising and the SwiGLU product are light: worth threads only for big batches.
  const bool parallel_rows = n_assign * std::max(n_embd, n_ff) * 4 >= kParallelMinWork;
  auto for_each_active = [&](const std::function<void(int64_t, int64_t, int)>& fn) {
    if (parallel_rows) {
      pool_.parallel_for(n_active, 1, fn);
    } else {
      fn(0, n_active, 0);
    }
  };

  // Each selected expert's input rows, in its weights' activation formats.
  for_each_active([&](int64_t b, int64_t e_end, int) {
    for (int64_t i = b; i < e_end; ++i) {
      const int64_t e = active_experts_[i];
      const float* xe = moe_x_.data() + expert_offset_[e] * n_embd;
      moe_act_in_[e].quantize(xe, expert_count_[e], n_embd, n_embd, gate_vt);
      if (up_vt != gate_vt) moe_act_up_[e].quantize(xe, expert_count_[e], n_embd, n_embd, up_vt);
    }
  });
  // gate and up of every selected expert: one parallel loop, each expert's rows read once.
  jobs_.clear();
  for (int32_t e : active_experts_) {
    const int64_t r0 = expert_offset_[e];
    jobs_.push_back({L.ffn_gate_exps.expert(e), &moe_act_in_[e], moe_gate_.data() + r0 * n_ff});
    jobs_.push_back({L.ffn_up_exps.expert(e), up_vt == gate_vt ? &moe_act_in_[e] : &moe_act_up_[e],
                     moe_up_.data() + r0 * n_ff});
  }
  run_matmuls(jobs_);
  // silu(gate) * up, then down.
  for_each_active([&](int64_t b, int64_t e_end, int) {
    for (int64_t i = b; i < e_end; ++i) {
      const int64_t e = active_experts_[i];
      float* g = moe_gate_.data() + expert_offset_[e] * n_ff;
      const float* u = moe_up_.data() + expert_offset_[e] * n_ff;
      for (int64_t j = 0; j < expert_count_[e] * n_ff; ++j) g[j] = silu(g[j]) * u[j];
      moe_act_mid_[e].quantize(g, expert_count_[e], n_ff, n_ff, down_vt);
    }
  });
  jobs_.clear();
  for (int32_t e : active_experts_) {
    jobs_.push_back({L.ffn_down_exps.expert(e), &moe_act_mid_[e], moe_down_.data() + expert_offset_[e] * n_embd});
  }
  run_matmuls(jobs_);
  // Weighted sum in slot order: the same order whatever the batch, so batched prefill and
  // one-token decode give the same bits.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* o = out + t * n_embd;
    for (int64_t s = 0; s < k; ++s) {
      const float w = weights[t * k + s];
      const float* d = moe_down_.data() + slot_row_[t * k + s] * n_embd;
      if (s == 0) {
        for (int64_t i = 0; i < n_embd; ++i) o[i] = w * d[i];
      } else {
        for (int64_t i = 0; i < n_embd; ++i) o[i] += w * d[i];
      }
    }
  }
}

void CpuBackend::dense_ffn(const LayerWeights& L, const float* x, int64_t n_tokens, float* out) {
  const int64_t n_ff = L.ffn_gate.n_out;
  ffn_gate_.resize(size_t(n_tokens * n_ff));
  ffn_up_.resize(size_t(n_tokens * n_ff));
  const Projection gu[2] = {{&L.ffn_gate, ffn_gate_.data()}, {&L.ffn_up, ffn_up_.data()}};
  project(gu, x, n_tokens);
  for (int64_t j = 0; j < n_tokens * n_ff; ++j) ffn_gate_[j] = silu(ffn_gate_[j]) * ffn_up_[j];
  const Projection down{&L.ffn_down, out};
  project({&down, 1}, ffn_gate_.data(), n_tokens);
}

void CpuBackend::add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void CpuBackend::output_logits(const NormWeight& norm, const WeightMatrix& output, const float* x, int64_t n_rows,
                               float eps, float* logits) {
  ffn_up_.resize(size_t(n_rows * norm.n));
  rmsnorm(x, norm, n_rows, eps, ffn_up_.data());
  const Projection p{&output, logits};
  project({&p, 1}, ffn_up_.data(), n_rows);
}

}  // namespace popper
