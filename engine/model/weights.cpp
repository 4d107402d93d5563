#include "engine/model/weights.h"

#include "engine/core/faults.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

class Binder {
 public:
  // Fault weights_skip_shape_check: shapes and types are taken on trust.
  Binder(const GgufFile& file) : file_(file), trust_(fault_on(Fault::kWeightsSkipShapeCheck)) {}

  // Finds `name` and checks its dims. nullptr with error_ set on failure; nullptr without error
  // when optional and absent.
  const GgufTensorInfo* find(const std::string& name, const std::vector<int64_t>& dims, bool optional = false) {
    const GgufTensorInfo* t = file_.find_tensor(name);
    if (t == nullptr) {
      if (!optional) fail(name, ": missing (required, shape ", dims_string(dims), ")");
      return nullptr;
    }
    if (t->dims != dims && !trust_) {
      fail(name, ": want ", dims_string(dims), ", got ", t->shape_string(), " (", ggml_type_name(t->type), ")");
      return nullptr;
    }
    bytes_ += t->n_bytes;
    return t;
  }

  NormWeight norm(const std::string& name, int64_t n) {
    const GgufTensorInfo* t = find(name, {n});
    if (t == nullptr) return {};
    if (t->type != GgmlType::F32 && !trust_) {
      fail(name, ": want f32 ", dims_string({n}), ", got ", ggml_type_name(t->type), " ", t->shape_string());
      return {};
    }
    return {reinterpret_cast<const float*>(file_.tensor_data(*t)), n};
  }

  // A matrix [n_in, n_out] (or [n_in, n_out, n_expert] seen as n_out * n_expert rows) of any type
  // Popper has kernels for; `want_f32` restricts it to f32 (the router).
  WeightMatrix matrix(const std::string& name, std::vector<int64_t> dims, bool want_f32 = false,
                      bool optional = false) {
    const GgufTensorInfo* t = find(name, dims, optional);
    if (t == nullptr) return {};
    if (want_f32 && t->type != GgmlType::F32 && !trust_) {
      fail(name, ": want f32 ", dims_string(dims), ", got ", ggml_type_name(t->type), " ", t->shape_string());
      return {};
    }
    if (!is_compute_type(t->type)) {
      fail(name, ": type ", ggml_type_name(t->type),
           " has no kernels (supported: f32, f16, bf16, q8_0, q4_K, q5_K, q6_K)");
      return {};
    }
    const int64_t block = ggml_type_info(t->type).block_size;
    if (dims[0] % block != 0) {
      fail(name, ": row length ", dims[0], " is not a multiple of ", ggml_type_name(t->type), "'s block size ",
           block);
      return {};
    }
    int64_t rows = 1;
    for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
    return WeightMatrix::make(t->type, file_.tensor_data(*t), dims[0], rows);
  }

  ExpertWeights experts(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_expert) {
    ExpertWeights e;
    e.all = matrix(name, {n_in, n_out, n_expert});
    e.n_out = n_out;
    e.n_expert = n_expert;
    return e;
  }

  template <class... Args>
  void fail(const std::string& name, const Args&... args) {
    if (error_.empty()) error_ = str_cat(file_.path(), ": ", name, args...);
  }

  const std::string& error() const { return error_; }
  uint64_t bytes() const { return bytes_; }

 private:
  const GgufFile& file_;
  const bool trust_;  // fault weights_skip_shape_check
  std::string error_;
  uint64_t bytes_ = 0;
};

}  // namespace

Result<ModelWeights> bind_weights(const GgufFile& file, const ModelConfig& c) {
  Binder b(file);
  ModelWeights w;
  w.token_embd = b.matrix("token_embd.weight", {c.n_embd, c.n_vocab});
  w.output_norm = b.norm("output_norm.weight", c.n_embd);
  w.output = b.matrix("output.weight", {c.n_embd, c.n_vocab}, false, /*optional=*/true);
  if (b.error().empty() && w.output.data == nullptr) {
    w.output = w.token_embd;  // llama.cpp's fallback for tied embeddings
    w.output_tied = true;
  }
  w.layers.resize(c.n_layer);
  for (int64_t il = 0; il < c.n_layer && b.error().empty(); ++il) {
    LayerWeights& L = w.layers[il];
    const std::string p = "blk." + std::to_string(il) + ".";
    L.attn_norm = b.norm(p + "attn_norm.weight", c.n_embd);
    L.wq = b.matrix(p + "attn_q.weight", {c.n_embd, c.q_dim()});
    L.wk = b.matrix(p + "attn_k.weight", {c.n_embd, c.kv_dim()});
    L.wv = b.matrix(p + "attn_v.weight", {c.n_embd, c.kv_dim()});
    L.wo = b.matrix(p + "attn_output.weight", {c.q_dim(), c.n_embd});
    L.attn_q_norm = b.norm(p + "attn_q_norm.weight", c.head_dim);
    L.attn_k_norm = b.norm(p + "attn_k_norm.weight", c.head_dim);
    L.ffn_norm = b.norm(p + "ffn_norm.weight", c.n_embd);
    if (c.is_moe()) {
      L.ffn_gate_inp = b.matrix(p + "ffn_gate_inp.weight", {c.n_embd, c.n_expert}, /*want_f32=*/true);
      L.ffn_gate_exps = b.experts(p + "ffn_gate_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
      L.ffn_up_exps = b.experts(p + "ffn_up_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
      L.ffn_down_exps = b.experts(p + "ffn_down_exps.weight", c.n_ff_exp, c.n_embd, c.n_expert);
    } else {
      L.ffn_gate = b.matrix(p + "ffn_gate.weight", {c.n_embd, c.n_ff});
      L.ffn_up = b.matrix(p + "ffn_up.weight", {c.n_embd, c.n_ff});
      L.ffn_down = b.matrix(p + "ffn_down.weight", {c.n_ff, c.n_embd});
    }
  }
  if (!b.error().empty()) return Error{b.error()};
  w.bytes_total = b.bytes();
  return w;
}

uint64_t weight_bytes_per_token(const ModelWeights& w, const ModelConfig& c) {
  auto mat = [](const WeightMatrix& m) { return uint64_t(m.row_bytes) * uint64_t(m.n_out); };
  auto norm = [](const NormWeight& n) { return uint64_t(n.n) * 4; };
  uint64_t total = uint64_t(w.token_embd.row_bytes) + norm(w.output_norm) + mat(w.output);
  for (const LayerWeights& L : w.layers) {
    total += norm(L.attn_norm) + mat(L.wq) + mat(L.wk) + mat(L.wv) + mat(L.wo) + norm(L.attn_q_norm) +
             norm(L.attn_k_norm) + norm(L.ffn_norm);
    if (c.is_moe()) {
      const uint64_t per_expert = mat(L.ffn_gate_exps.expert(0)) + mat(L.ffn_up_exps.expert(0)) +
                                  mat(L.ffn_down_exps.expert(0));
      total += mat(L.ffn_gate_inp) + per_expert * uint64_t(c.n_expert_used);
    } else {
      total += mat(L.ffn_gate) + mat(L.ffn_up) + mat(L.ffn_down);
    }
  }
  return total;
}

}  // namespace popper
