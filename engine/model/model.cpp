#include "engine/model/model.h"

#include <chrono>
#include <cmath>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>

#include "engine/core/faults.h"
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

Result<const PreparedWeights*> Model::weights_on(Backend& backend) const {
  const std::lock_guard<std::mutex> lock(placements_mu_);
  for (const auto& p : placements_) {
    if (&p->device() == &backend.device()) return p.get();
  }
  // The first device's copies release their file pages one tensor at a time, so loading never
  // holds both; later devices leave it to release_unviewed_pages (an earlier one may view them).
  Backend::CopiedFn release;
  if (placements_.empty()) release = [this](const void* data, uint64_t n) { file_->release_pages(data, n); };
  auto prepared = backend.prepare(weights_, release);
  if (!prepared.ok()) return prepared.error();
  placements_.push_back(std::move(prepared.value()));
  release_unviewed_pages();
  return placements_.back().get();
}

void Model::release_unviewed_pages() const {
  // A file range is released when no placement's handle views it in place.
  auto bytes_of = [](const auto& view) -> std::pair<const void*, uint64_t> {
    using View = std::decay_t<decltype(view)>;
    if constexpr (std::is_same_v<View, NormWeight>) {
      return {view.data, uint64_t(view.n) * 4};
    } else if constexpr (std::is_same_v<View, ExpertWeights>) {
      return {view.all.data, uint64_t(view.all.n_out) * uint64_t(view.all.row_bytes)};
    } else {
      return {view.data, uint64_t(view.n_out) * uint64_t(view.row_bytes)};
    }
  };
  std::set<const void*> viewed;
  for (const auto& p : placements_) {
    p->for_each_with_file(weights_, [&](WeightRef h, const auto& view) {
      if (h != nullptr && h->views_file()) viewed.insert(bytes_of(view).first);
    });
  }
  for (const auto& p : placements_) {
    p->for_each_with_file(weights_, [&](WeightRef h, const auto& view) {
      const auto [data, n] = bytes_of(view);
      if (h != nullptr && viewed.count(data) == 0) file_->release_pages(data, n);
    });
  }
}

Session::Session(const Model& model, Backend& backend, const SessionOptions& options)
    : model_(model), backend_(backend), options_(options) {
  POPPER_CHECK(options.max_batch > 0, "max_batch");
  const ModelConfig& c = model.config();
  const int64_t b = std::min(options.max_batch, options.capacity);
  options_.max_batch = b;
  // The weights, the cache and the workspace, in the backend's memory. A backend too small for one
  // of them makes every forward() return the error instead of crashing here.
  auto weights = model.weights_on(backend);
  if (weights.ok()) {
    weights_ = weights.value();
  } else {
    buffers_ = make_error("the model's weights on the ", backend.name(), " backend: ", weights.message());
  }
  auto cache = backend.make_kv_cache({c.n_layer, c.n_head_kv, c.head_dim, options.capacity, options.kv_type});
  if (cache.ok()) {
    cache_ = std::move(cache.value());
  } else if (buffers_.ok()) {
    buffers_ = cache.error();
  }
  auto take = [&](auto& array, int64_t n) {
    if (!buffers_.ok()) return;
    auto a = std::remove_reference_t<decltype(array)>::make(backend, n);
    if (!a.ok()) {
      buffers_ = make_error("session buffers for a batch of ", b, " tokens: ", a.message());
      return;
    }
    array = std::move(a.value());
  };
  take(tokens_, b);
  take(x_, b * c.n_embd);
  take(xn_, b * c.n_embd);
  take(q_, b * c.q_dim());
  take(k_, b * c.kv_dim());
  take(v_, b * c.kv_dim());
  take(attn_, b * c.q_dim());
  take(proj_, b * c.n_embd);
  if (c.is_moe()) {
    // Recording keeps every layer's choices of the chunk apart, to copy them out after the step.
    const int64_t layers = options.record_routing ? c.n_layer : 1;
    take(expert_ids_, layers * b * c.n_expert_used);
    take(expert_weights_, layers * b * c.n_expert_used);
  }
  routing_.k = c.n_expert_used;
  if (options.record_routing) {
    routing_.ids.resize(c.n_layer);
    routing_.weights.resize(c.n_layer);
  }
  step_record_ = backend.make_step_record();
}

Session::~Session() = default;

KvCache& Session::cache() {
  POPPER_CHECK(cache_ != nullptr, "the session has no KV cache: ", buffers_.message());
  return *cache_;
}

const KvCache& Session::cache() const {
  POPPER_CHECK(cache_ != nullptr, "the session has no KV cache: ", buffers_.message());
  return *cache_;
}

Status Session::forward(std::span<const int32_t> tokens, float* logits, std::vector<float>* all_logits) {
  const ModelConfig& c = model_.config();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.n_vocab) {
      return make_error("token ", i, ": id ", tokens[i], " is outside the vocabulary [0, ", c.n_vocab, ")");
    }
  }
  if (!buffers_.ok()) return buffers_;
  if (int64_t(tokens.size()) > cache_->free_positions()) {
    return make_error("KV cache full: ", tokens.size(), " tokens need positions [", cache_->n_pos(), ", ",
                      cache_->n_pos() + int64_t(tokens.size()), ") but the capacity is ", cache_->capacity());
  }
  if (tokens.empty()) return make_error("forward: no tokens");
  // Fault moe_as_dense: the seed's dispatch bug, a qwen3moe model sent down the dense FFN.
  if (c.is_moe() && (options_.force_dense_ffn || fault_on(Fault::kMoeAsDense))) {
    // The guard: the serve contract greps for this exact line. Nothing has run.
    log_error(kDenseFfnOnMoeGuardMessage);
    return Error{std::string(kDenseFfnOnMoeGuardMessage)};
  }
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

Status Session::issue_layers(int64_t n, int64_t pos0) {
  const ModelConfig& c = model_.config();
  const PreparedWeights& w = *weights_;
  const AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
  const int64_t k = c.n_expert_used;
  // Fault kv_stale_position: a continuing step stores its keys and values one position early,
  // so the newest position of the cache holds a stale entry when attention reads it.
  const int64_t store_pos0 = pos0 > 0 && fault_on(Fault::kKvStalePosition) ? pos0 - 1 : pos0;
  backend_.embed(*w.token_embd, tokens_.data(), n, x_.data());
  backend_.rmsnorm(x_.data(), *w.layers[0].attn_norm, n, c.rms_eps, xn_.data());
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const PreparedLayer& L = w.layers[il];
    // xn = attn_norm(x) here (before the loop, or fused with the previous layer's residual add).
    const Projection qkv[3] = {{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}};
    backend_.project(qkv, xn_.data(), n);
    backend_.rmsnorm_rope(q_.data(), *L.attn_q_norm, n, c.n_head, c.rms_eps, pos0, c.rope_freq_base);
    backend_.rmsnorm_rope(k_.data(), *L.attn_k_norm, n, c.n_head_kv, c.rms_eps, pos0, c.rope_freq_base);
    POPPER_RETURN_IF_ERROR(backend_.store_kv(*cache_, il, store_pos0, n, k_.data(), v_.data()));
    backend_.attention(*cache_, il, q_.data(), n, pos0, shape, attn_.data());
    const Projection o{L.wo, proj_.data()};
    backend_.project({&o, 1}, attn_.data(), n);
    backend_.add_rmsnorm(x_.data(), proj_.data(), *L.ffn_norm, n, c.rms_eps, xn_.data());
    if (c.is_moe()) {
      const int64_t at = options_.record_routing ? il * options_.max_batch * k : 0;
      int32_t* ids = expert_ids_.data() + at;
      float* weights = expert_weights_.data() + at;
      backend_.moe_route(*L.ffn_gate_inp, xn_.data(), n, k, ids, weights);
      backend_.moe_ffn({L.ffn_gate_exps, L.ffn_up_exps, L.ffn_down_exps}, xn_.data(), n, ids, weights, k,
                       proj_.data());
    } else {
      backend_.dense_ffn({L.ffn_gate, L.ffn_up, L.ffn_down}, xn_.data(), n, proj_.data());
    }
    if (il + 1 < c.n_layer) {
      backend_.add_rmsnorm(x_.data(), proj_.data(), *w.layers[il + 1].attn_norm, n, c.rms_eps, xn_.data());
    } else {
      backend_.add(x_.data(), proj_.data(), n * c.n_embd);
    }
  }
  return Status::success();
}

void Session::record_routing(int64_t n) {
  const ModelConfig& c = model_.config();
  const int64_t k = c.n_expert_used;
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const int64_t at = il * options_.max_batch * k;
    std::vector<int32_t>& ids = routing_.ids[il];
    std::vector<float>& weights = routing_.weights[il];
    ids.resize(ids.size() + size_t(n * k));
    weights.resize(weights.size() + size_t(n * k));
    expert_ids_.download(ids.data() + ids.size() - n * k, n * k, at);
    expert_weights_.download(weights.data() + weights.size() - n * k, n * k, at);
  }
}

Status Session::forward_chunk(const int32_t* tokens, int64_t n, float* logits_out, bool all) {
  const ModelConfig& c = model_.config();
  const PreparedWeights& w = *weights_;
  const int64_t pos0 = cache_->n_pos();
  POPPER_RETURN_IF_ERROR(cache_->check_range(pos0, n));
  const int64_t rows = all ? n : 1;
  if (logits_out != nullptr && logits_.size() < rows * c.n_vocab) {  // before anything runs
    auto grown = BackendArray<float>::make(backend_, rows * c.n_vocab);
    if (!grown.ok()) return make_error("logits of ", rows, " tokens: ", grown.message());
    logits_ = std::move(grown.value());
  }
  // Faults decode_sleep / prefill_sleep: a slow step (falsifies the throughput floors): 250 ms a
  // decode step, 50 ms a prompt token of a multi-token chunk (a 20 tok/s prefill ceiling).
  // decode_stall: 5 ms a decode step, enough to sink a cache-speedup claim on a tiny model (its
  // batched recompute takes a few ms a step) at 1/50 of decode_sleep's cost to the control.
  if (n == 1 ? fault_on(Fault::kDecodeSleep) : fault_on(Fault::kPrefillSleep))
    std::this_thread::sleep_for(std::chrono::milliseconds(n == 1 ? 250 : 50 * n));
  if (n == 1 && fault_on(Fault::kDecodeStall)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  tokens_.upload(tokens, n);
  const Backend::Step step{step_record_.get(), n, pos0, !options_.record_routing};
  POPPER_RETURN_IF_ERROR(backend_.run_step(step, [&] { return issue_layers(n, pos0); }));
  // One count per layer per forward call, here rather than in the step: a replayed step does
  // not run host code.
  (c.is_moe() ? model_.counters().moe : model_.counters().dense).fetch_add(uint64_t(c.n_layer),
                                                                          std::memory_order_relaxed);
  if (options_.record_routing && c.is_moe()) record_routing(n);
  cache_->commit(pos0 + n);
  if (logits_out != nullptr) {
    backend_.output_logits(*w.output_norm, *w.output, x_.data() + (n - rows) * c.n_embd, rows, c.rms_eps,
                           logits_.data());
    logits_.download(logits_out, rows * c.n_vocab);
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
