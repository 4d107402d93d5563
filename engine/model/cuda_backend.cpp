#include "engine/model/cuda_backend.h"

#ifdef POPPER_HAVE_CUDA

#include <algorithm>

#include "engine/quant/traits.h"

namespace popper {

void* CudaBackend::Buffer::need(size_t n) {
  if (n <= bytes && p != nullptr) return p;
  cuda::free(p);
  auto r = cuda::alloc(n);
  POPPER_CHECK(r.ok(), "CUDA scratch: ", r.ok() ? "" : r.message());
  p = r.value();
  bytes = n;
  return p;
}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create() {
  auto info = cuda::init();
  if (!info.ok()) return info.error();
  std::unique_ptr<CudaBackend> b(new CudaBackend());
  b->info_ = info.value();
  return b;
}

CudaBackend::~CudaBackend() {
  for (auto& [host, up] : uploads_) cuda::free(up.second);
  for (auto& [cache, dc] : caches_) {
    cuda::free(dc.k);
    cuda::free(dc.v);
  }
  for (Buffer* b : {&in_, &in2_, &out_, &act_, &act2_, &scratch_, &ids_, &weights_, &groups_, &rows_, &slot_row_,
                    &moe_x_, &moe_gate_, &moe_up_, &moe_down_, &ffn_gate_, &ffn_up_}) {
    cuda::free(b->p);
  }
}

Status CudaBackend::upload_weights(const ModelWeights& w) {
  std::vector<std::pair<const void*, size_t>> tensors;
  auto matrix = [&](const WeightMatrix& m) {
    if (m.data != nullptr) tensors.emplace_back(m.data, size_t(m.n_out * m.row_bytes));
  };
  auto norm = [&](const NormWeight& n) {
    if (n.data != nullptr) tensors.emplace_back(n.data, size_t(n.n) * 4);
  };
  matrix(w.token_embd);
  matrix(w.output);
  norm(w.output_norm);
  for (const LayerWeights& L : w.layers) {
    for (const WeightMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down, &L.ffn_gate_inp,
                                  &L.ffn_gate_exps.all, &L.ffn_up_exps.all, &L.ffn_down_exps.all}) {
      matrix(*m);
    }
    for (const NormWeight* n : {&L.attn_norm, &L.attn_q_norm, &L.attn_k_norm, &L.ffn_norm}) norm(*n);
  }
  std::sort(tensors.begin(), tensors.end());
  tensors.erase(std::unique(tensors.begin(), tensors.end()), tensors.end());
  uint64_t need = 0;
  for (const auto& [p, n] : tensors) {
    if (uploads_.count(static_cast<const uint8_t*>(p)) == 0) need += n;
  }
  const cuda::DeviceInfo now = cuda::device_info();
  if (need > now.free_bytes) {
    return make_error("CUDA: the weights need ", need, " bytes on ", info_.name, " but only ", now.free_bytes,
                      " of ", now.total_bytes, " are free");
  }
  for (const auto& [p, n] : tensors) {
    if (uploads_.count(static_cast<const uint8_t*>(p)) != 0) continue;
    auto d = cuda::alloc(n);
    if (!d.ok()) return d.error();
    cuda::upload(d.value(), p, n);
    uploads_[static_cast<const uint8_t*>(p)] = {n, d.value()};
  }
  return Status::success();
}

const void* CudaBackend::device_of(const void* host, size_t bytes) {
  const auto* h = static_cast<const uint8_t*>(host);
  auto it = uploads_.upper_bound(h);
  if (it != uploads_.begin()) {
    --it;
    if (h >= it->first && h + bytes <= it->first + it->second.first) {
      return static_cast<uint8_t*>(it->second.second) + (h - it->first);
    }
  }
  auto d = cuda::alloc(bytes);
  POPPER_CHECK(d.ok(), "CUDA weight upload: ", d.ok() ? "" : d.message());
  cuda::upload(d.value(), host, bytes);
  uploads_[h] = {bytes, d.value()};
  return d.value();
}

cuda::DeviceMatrix CudaBackend::device_matrix(const WeightMatrix& w) {
  POPPER_CHECK(cuda::supports_weight_type(w.type), "no CUDA kernel for ", ggml_type_name(w.type));
  return {w.type, device_of(w.data, size_t(w.n_out * w.row_bytes)), w.n_in, w.n_out, w.row_bytes};
}

float* CudaBackend::upload_floats(Buffer& b, const float* host, int64_t n) {
  float* d = b.f(size_t(n));
  cuda::upload(d, host, size_t(n) * sizeof(float));
  return d;
}

const void* CudaBackend::activations(GgmlType weight_type, const float* x, int64_t n_rows, int64_t n_cols,
                                     Buffer& slot) {
  const GgmlType vt = cuda::vec_dot_type(weight_type);
  if (vt == GgmlType::F32) return x;
  void* a = slot.need(size_t(n_rows * cuda::activation_row_bytes(vt, n_cols)));
  cuda::quantize_activations(x, n_rows, n_cols, vt, a);
  return a;
}

void CudaBackend::matmul_f32(const WeightMatrix& w, const float* x, int64_t n, float* y, Buffer& slot) {
  const cuda::DeviceMatrix dm = device_matrix(w);
  const void* a = activations(w.type, x, n, w.n_in, slot);
  cuda::matmul(dm, a, n, y, w.n_out, scratch_.need(cuda::matmul_scratch_bytes(dm, n)));
}

void CudaBackend::embed(const WeightMatrix& table, const int32_t* tokens, int64_t n_tokens, float* x) {
  auto* ids = static_cast<int32_t*>(ids_.need(size_t(n_tokens) * 4));
  cuda::upload(ids, tokens, size_t(n_tokens) * 4);
  float* dx = out_.f(size_t(n_tokens * table.n_in));
  const cuda::DeviceMatrix t = device_matrix(table);
  cuda::embed(table.type, t.data, table.row_bytes, table.n_in, ids, n_tokens, dx);
  cuda::download(x, dx, size_t(n_tokens * table.n_in) * 4);
}

void CudaBackend::rmsnorm(const float* x, const NormWeight& w, int64_t n_rows, float eps, float* y) {
  float* dx = upload_floats(in_, x, n_rows * w.n);
  cuda::rmsnorm(dx, device_norm(w), n_rows, w.n, eps, dx);
  cuda::download(y, dx, size_t(n_rows * w.n) * 4);
}

void CudaBackend::project(std::span<const Projection> outs, const float* x, int64_t n_tokens) {
  if (outs.empty()) return;
  const int64_t n_in = outs[0].w->n_in;
  float* dx = upload_floats(in_, x, n_tokens * n_in);
  // One quantisation per activation format, shared by every projection of that format.
  GgmlType have = GgmlType::F32;
  const void* a = nullptr;
  for (const Projection& p : outs) {
    POPPER_CHECK(p.w->n_in == n_in, "projection inputs differ");
    const GgmlType vt = cuda::vec_dot_type(p.w->type);
    if (a == nullptr || vt != have) {
      a = activations(p.w->type, dx, n_tokens, n_in, a == nullptr ? act_ : act2_);
      have = vt;
    }
    const cuda::DeviceMatrix dm = device_matrix(*p.w);
    float* dy = out_.f(size_t(n_tokens * p.w->n_out));
    cuda::matmul(dm, a, n_tokens, dy, p.w->n_out, scratch_.need(cuda::matmul_scratch_bytes(dm, n_tokens)));
    cuda::download(p.y, dy, size_t(n_tokens * p.w->n_out) * 4);
  }
}

void CudaBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t pos0, float freq_base) {
  const int64_t n = n_tokens * n_heads * head_dim;
  float* dx = upload_floats(in_, x, n);
  cuda::rope(dx, n_tokens, n_heads, head_dim, pos0, freq_base);
  cuda::download(x, dx, size_t(n) * 4);
}

CudaBackend::DeviceCache& CudaBackend::device_cache(const KvCache& cache) {
  DeviceCache& dc = caches_[&cache];
  const bool f16 = cache.type() == KvType::kF16;
  if (dc.k == nullptr || dc.n_layer != cache.n_layer() || dc.n_head_kv != cache.n_head_kv() ||
      dc.head_dim != cache.head_dim() || dc.capacity != cache.capacity() || dc.f16 != f16) {
    cuda::free(dc.k);
    cuda::free(dc.v);
    const size_t bytes = size_t(cache.n_layer() * cache.n_head_kv() * cache.capacity() * cache.head_dim()) *
                         size_t(cache.elem_bytes());
    auto k = cuda::alloc(bytes);
    POPPER_CHECK(k.ok(), "CUDA KV cache: ", k.ok() ? "" : k.message());
    auto v = cuda::alloc(bytes);
    POPPER_CHECK(v.ok(), "CUDA KV cache: ", v.ok() ? "" : v.message());
    dc = {k.value(), v.value(), cache.n_layer(), cache.n_head_kv(), cache.head_dim(), cache.capacity(), f16};
  }
  return dc;
}

Status CudaBackend::store_kv(KvCache& cache, int64_t il, int64_t pos0, int64_t n_tokens, const float* k,
                             const float* v) {
  if (cache.capacity() > cuda::max_attention_positions(cache.head_dim())) {
    return make_error("CUDA backend: a KV cache of ", cache.capacity(), " positions is past the attention kernel's ",
                      cuda::max_attention_positions(cache.head_dim()), " (head_dim ", cache.head_dim(), ")");
  }
  POPPER_RETURN_IF_ERROR(cache.store(il, pos0, n_tokens, k, v));
  const DeviceCache& dc = device_cache(cache);
  const int64_t layer = dc.n_head_kv * dc.capacity * dc.head_dim * (dc.f16 ? 2 : 4);
  const cuda::DeviceKv kv{static_cast<uint8_t*>(dc.k) + il * layer, static_cast<uint8_t*>(dc.v) + il * layer,
                          dc.capacity, dc.n_head_kv, dc.head_dim, dc.f16};
  const int64_t n = n_tokens * dc.n_head_kv * dc.head_dim;
  cuda::store_kv(kv, pos0, n_tokens, upload_floats(in_, k, n), upload_floats(in2_, v, n));
  return Status::success();
}

void CudaBackend::attention(const KvCache& cache, int64_t il, const float* q, int64_t n_tokens, int64_t pos0,
                            const AttentionShape& s, float* out) {
  const DeviceCache& dc = device_cache(cache);
  const int64_t layer = dc.n_head_kv * dc.capacity * dc.head_dim * (dc.f16 ? 2 : 4);
  const cuda::DeviceKv kv{static_cast<uint8_t*>(dc.k) + il * layer, static_cast<uint8_t*>(dc.v) + il * layer,
                          dc.capacity, dc.n_head_kv, dc.head_dim, dc.f16};
  const int64_t n = n_tokens * s.n_head * s.head_dim;
  float* dq = upload_floats(in_, q, n);
  float* dout = out_.f(size_t(n));
  const Status st = cuda::attention(kv, dq, n_tokens, pos0, s.n_head, s.scale, dout);
  POPPER_CHECK(st.ok(), "attention: ", st.ok() ? std::string() : st.message());
  cuda::download(out, dout, size_t(n) * 4);
}

void CudaBackend::moe_route(const WeightMatrix& gate_inp, const float* x, int64_t n_tokens, int64_t k, int32_t* ids,
                            float* weights) {
  float* dx = upload_floats(in_, x, n_tokens * gate_inp.n_in);
  float* logits = out_.f(size_t(n_tokens * gate_inp.n_out));
  matmul_f32(gate_inp, dx, n_tokens, logits, act_);
  auto* did = static_cast<int32_t*>(ids_.need(size_t(n_tokens * k) * 4));
  float* dw = weights_.f(size_t(n_tokens * k));
  cuda::route_top_k(logits, n_tokens, gate_inp.n_out, k, did, dw);
  cuda::download(ids, did, size_t(n_tokens * k) * 4);
  cuda::download(weights, dw, size_t(n_tokens * k) * 4);
}

void CudaBackend::moe_ffn(const LayerWeights& L, const float* x, int64_t n_tokens, const int32_t* ids,
                          const float* weights, int64_t k, float* out) {
  const int64_t n_expert = L.ffn_gate_exps.n_expert;
  const int64_t n_embd = L.ffn_gate_exps.all.n_in;
  const int64_t n_ff = L.ffn_gate_exps.n_out;
  const int64_t n_assign = n_tokens * k;
  // Group (token, slot) assignments by expert, as the CPU does: expert e owns grouped rows
  // [offset[e], offset[e] + count[e]); each group's weights are read once per call.
  expert_count_.assign(size_t(n_expert), 0);
  for (int64_t a = 0; a < n_assign; ++a) expert_count_[ids[a]]++;
  expert_offset_.assign(size_t(n_expert), 0);
  host_groups_.clear();
  int64_t off = 0, max_count = 0;
  for (int64_t e = 0; e < n_expert; ++e) {
    expert_offset_[e] = off;
    if (expert_count_[e] > 0) {
      host_groups_.insert(host_groups_.end(), {int32_t(e), int32_t(off), int32_t(expert_count_[e])});
      max_count = std::max(max_count, expert_count_[e]);
    }
    off += expert_count_[e];
  }
  host_rows_.resize(size_t(n_assign));
  host_slot_row_.resize(size_t(n_assign));
  std::fill(expert_count_.begin(), expert_count_.end(), 0);  // reused as a fill cursor
  for (int64_t a = 0; a < n_assign; ++a) {
    const int64_t row = expert_offset_[ids[a]] + expert_count_[ids[a]]++;
    host_slot_row_[a] = int32_t(row);
    host_rows_[row] = int32_t(a / k);
  }
  const int64_t n_groups = int64_t(host_groups_.size()) / 3;
  auto* dgroups = static_cast<int32_t*>(groups_.need(host_groups_.size() * 4));
  cuda::upload(dgroups, host_groups_.data(), host_groups_.size() * 4);
  auto* drows = static_cast<int32_t*>(rows_.need(size_t(n_assign) * 4));
  cuda::upload(drows, host_rows_.data(), size_t(n_assign) * 4);
  auto* dslot = static_cast<int32_t*>(slot_row_.need(size_t(n_assign) * 4));
  cuda::upload(dslot, host_slot_row_.data(), size_t(n_assign) * 4);
  float* dw = upload_floats(weights_, weights, n_assign);
  float* dx = upload_floats(in_, x, n_tokens * n_embd);

  float* gx = moe_x_.f(size_t(n_assign * n_embd));
  cuda::gather_rows(dx, drows, n_assign, n_embd, gx);
  const cuda::DeviceMatrix gate = device_matrix(L.ffn_gate_exps.all);
  const cuda::DeviceMatrix up = device_matrix(L.ffn_up_exps.all);
  const cuda::DeviceMatrix down = device_matrix(L.ffn_down_exps.all);
  const void* a_gate = activations(gate.type, gx, n_assign, n_embd, act_);
  const void* a_up = cuda::vec_dot_type(up.type) == cuda::vec_dot_type(gate.type)
                         ? a_gate
                         : activations(up.type, gx, n_assign, n_embd, act2_);
  float* g = moe_gate_.f(size_t(n_assign * n_ff));
  float* u = moe_up_.f(size_t(n_assign * n_ff));
  cuda::matmul_grouped(gate, n_ff, a_gate, dgroups, n_groups, max_count, g);
  cuda::matmul_grouped(up, n_ff, a_up, dgroups, n_groups, max_count, u);
  cuda::swiglu(g, u, n_assign * n_ff);
  const void* a_mid = activations(down.type, g, n_assign, n_ff, act_);
  float* d = moe_down_.f(size_t(n_assign * n_embd));
  cuda::matmul_grouped(down, n_embd, a_mid, dgroups, n_groups, max_count, d);
  float* dout = out_.f(size_t(n_tokens * n_embd));
  cuda::combine_experts(d, dslot, dw, n_tokens, k, n_embd, dout);
  cuda::download(out, dout, size_t(n_tokens * n_embd) * 4);
}

void CudaBackend::dense_ffn(const LayerWeights& L, const float* x, int64_t n_tokens, float* out) {
  const int64_t n_ff = L.ffn_gate.n_out;
  float* dx = upload_floats(in_, x, n_tokens * L.ffn_gate.n_in);
  float* g = ffn_gate_.f(size_t(n_tokens * n_ff));
  float* u = ffn_up_.f(size_t(n_tokens * n_ff));
  matmul_f32(L.ffn_gate, dx, n_tokens, g, act_);
  matmul_f32(L.ffn_up, dx, n_tokens, u, act2_);
  cuda::swiglu(g, u, n_tokens * n_ff);
  float* dout = out_.f(size_t(n_tokens * L.ffn_down.n_out));
  matmul_f32(L.ffn_down, g, n_tokens, dout, act_);
  cuda::download(out, dout, size_t(n_tokens * L.ffn_down.n_out) * 4);
}

void CudaBackend::add(float* x, const float* y, int64_t n) {
  float* dx = upload_floats(in_, x, n);
  cuda::add(dx, upload_floats(in2_, y, n), n);
  cuda::download(x, dx, size_t(n) * 4);
}

void CudaBackend::output_logits(const NormWeight& norm, const WeightMatrix& output, const float* x, int64_t n_rows,
                                float eps, float* logits) {
  float* dx = upload_floats(in_, x, n_rows * norm.n);
  cuda::rmsnorm(dx, device_norm(norm), n_rows, norm.n, eps, dx);
  float* dl = out_.f(size_t(n_rows * output.n_out));
  matmul_f32(output, dx, n_rows, dl, act_);
  cuda::download(logits, dl, size_t(n_rows * output.n_out) * 4);
}

}  // namespace popper

#endif  // POPPER_HAVE_CUDA
