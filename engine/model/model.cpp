#include "engine/model/model.h"

#include <cmath>

#include "engine/core/log.h"
#include "engine/model/ffn_guard.h"

namespace popper {

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.error();
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file.value());
  auto config = read_model_config(*m->file_);
  if (!config.ok()) return config.error();
  m->config_ = config.value();
  auto weights = bind_weights(*m->file_, m->config_);
  if (!weights.ok()) return weights.error();
  m->weights_ = std::move(weights.value());
  return m;
}

Session::Session(const Model& model, Backend& backend, const SessionOptions& options)
    : model_(model),
      backend_(backend),
      options_(options),
      cache_(model.config().n_layer, model.config().n_head_kv, model.config().head_dim, options.capacity,
             options.kv_type) {
  POPPER_CHECK(options.max_batch > 0, "max_batch");
  const ModelConfig& c = model.config();
  const int64_t b = std::min(options.max_batch, options.capacity);
  options_.max_batch = b;
  x_.resize(b * c.n_embd);
  xn_.resize(b * c.n_embd);
  q_.resize(b * c.q_dim());
  k_.resize(b * c.kv_dim());
  v_.resize(b * c.kv_dim());
  attn_.resize(b * c.q_dim());
  proj_.resize(b * c.n_embd);
  if (c.is_moe()) {
    expert_ids_.resize(b * c.n_expert_used);
    expert_weights_.resize(b * c.n_expert_used);
  }
  routing_.k = c.n_expert_used;
  if (options.record_routing) {
    routing_.ids.resize(c.n_layer);
    routing_.weights.resize(c.n_layer);
  }
}

Status Session::forward(std::span<const int32_t> tokens, float* logits, std::vector<float>* all_logits) {
  const ModelConfig& c = model_.config();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.n_vocab) {
      return make_error("token ", i, ": id ", tokens[i], " is outside the vocabulary [0, ", c.n_vocab, ")");
    }
  }
  if (int64_t(tokens.size()) > cache_.free_positions()) {
    return make_error("KV cache full: ", tokens.size(), " tokens need positions [", cache_.n_pos(), ", ",
                      cache_.n_pos() + int64_t(tokens.size()), ") but the capacity is ", cache_.capacity());
  }
  if (tokens.empty()) return make_error("forward: no tokens");
  std::vector<float> chunk_logits;
  for (size_t begin = 0; begin < tokens.size(); begin += options_.max_batch) {
    const int64_t n = std::min<int64_t>(options_.max_batch, int64_t(tokens.size() - begin));
    const bool last = begin + n == tokens.size();
    float* out = logits;
    if (all_logits != nullptr) {
      const size_t at = all_logits->size();
      all_logits->resize(at + size_t(n * c.n_vocab));
      out = all_logits->data() + at;
    }
    if (all_logits != nullptr || last) {
      POPPER_RETURN_IF_ERROR(forward_chunk(tokens.data() + begin, n, out, all_logits != nullptr));
    } else {
      POPPER_RETURN_IF_ERROR(forward_chunk(tokens.data() + begin, n, nullptr, false));
    }
  }
  if (all_logits != nullptr && logits != nullptr) {
    std::copy(all_logits->end() - c.n_vocab, all_logits->end(), logits);
  }
  return Status::success();
}

Status Session::ffn(const LayerWeights& L, int64_t il, int64_t n) {
  const ModelConfig& c = model_.config();
  if (!c.is_moe() || options_.force_dense_ffn) {
    if (c.is_moe()) {
      // The guard: the serve contract greps for this exact line.
      log_error(kDenseFfnOnMoeGuardMessage);
      return Error{std::string(kDenseFfnOnMoeGuardMessage)};
    }
    model_.counters().dense.fetch_add(1, std::memory_order_relaxed);
    backend_.dense_ffn(L, xn_.data(), n, proj_.data());
    return Status::success();
  }
  model_.counters().moe.fetch_add(1, std::memory_order_relaxed);
  const int64_t k = c.n_expert_used;
  backend_.moe_route(L.ffn_gate_inp, xn_.data(), n, k, expert_ids_.data(), expert_weights_.data());
  if (options_.record_routing) {
    routing_.ids[il].insert(routing_.ids[il].end(), expert_ids_.begin(), expert_ids_.begin() + n * k);
    routing_.weights[il].insert(routing_.weights[il].end(), expert_weights_.begin(), expert_weights_.begin() + n * k);
  }
  backend_.moe_ffn(L, xn_.data(), n, expert_ids_.data(), expert_weights_.data(), k, proj_.data());
  return Status::success();
}

Status Session::forward_chunk(const int32_t* tokens, int64_t n, float* logits_out, bool all) {
  const ModelConfig& c = model_.config();
  const ModelWeights& w = model_.weights();
  const int64_t pos0 = cache_.n_pos();
  const AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
  backend_.embed(w.token_embd, tokens, n, x_.data());
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[il];
    backend_.rmsnorm(x_.data(), L.attn_norm, n, c.rms_eps, xn_.data());
    const Projection qkv[3] = {{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}};
    backend_.project(qkv, xn_.data(), n);
    backend_.rmsnorm(q_.data(), L.attn_q_norm, n * c.n_head, c.rms_eps, q_.data());
    backend_.rmsnorm(k_.data(), L.attn_k_norm, n * c.n_head_kv, c.rms_eps, k_.data());
    backend_.rope(q_.data(), n, c.n_head, c.head_dim, pos0, c.rope_freq_base);
    backend_.rope(k_.data(), n, c.n_head_kv, c.head_dim, pos0, c.rope_freq_base);
    POPPER_RETURN_IF_ERROR(backend_.store_kv(cache_, il, pos0, n, k_.data(), v_.data()));
    backend_.attention(cache_, il, q_.data(), n, pos0, shape, attn_.data());
    const Projection o{&L.wo, proj_.data()};
    backend_.project({&o, 1}, attn_.data(), n);
    backend_.add(x_.data(), proj_.data(), n * c.n_embd);
    backend_.rmsnorm(x_.data(), L.ffn_norm, n, c.rms_eps, xn_.data());
    POPPER_RETURN_IF_ERROR(ffn(L, il, n));
    backend_.add(x_.data(), proj_.data(), n * c.n_embd);
  }
  cache_.commit(pos0 + n);
  if (logits_out != nullptr) {
    const int64_t rows = all ? n : 1;
    backend_.output_logits(w.output_norm, w.output, x_.data() + (n - rows) * c.n_embd, rows, c.rms_eps, logits_out);
  }
  return Status::success();
}

Result<std::vector<float>> forward_full(const Model& model, Backend& backend, std::span<const int32_t> tokens,
                                        KvType kv_type) {
  if (tokens.empty()) return make_error("forward_full: no tokens");
  SessionOptions o;
  o.capacity = int64_t(tokens.size());
  o.max_batch = int64_t(tokens.size());
  o.kv_type = kv_type;
  Session s(model, backend, o);
  std::vector<float> logits(model.config().n_vocab);
  POPPER_RETURN_IF_ERROR(s.forward(tokens, logits.data()));
  return logits;
}

}  // namespace popper
