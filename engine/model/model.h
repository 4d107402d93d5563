// A loaded Qwen3 / Qwen3-MoE model, and a Session: one sequence's KV cache and workspace, run
// through the forward pass on a Backend.
//
// Forward, per layer (llama.cpp's qwen3 / qwen3moe graphs):
//   h = x + W_o · attn(rope(qnorm(W_q · rms(x))), rope(knorm(W_k · rms(x))), W_v · rms(x))
//   x' = h + ffn(rms(h))          ffn = dense SwiGLU (qwen3) or routed experts (qwen3moe)
// then logits = output · rms(x). Both the cached path and the full-recompute reference
// (forward_full) run this same code on the same backend ops; they differ only in what the KV
// cache already holds.
//
// Ownership: the Model owns the file, its bound views and the weights each backend device
// prepared from them (weights_on); a Session owns its KV cache, its workspace and what the
// backend records of its steps, all made by its backend and freed with the session.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/model/backend.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model_config.h"
#include "engine/model/prepared_weights.h"
#include "engine/model/weights.h"

namespace popper {

// How often each FFN path ran (one count per layer per forward call). Read by the server's
// /metrics: an MoE model must show dense == 0.
struct FfnDispatchCounters {
  std::atomic<uint64_t> dense{0};
  std::atomic<uint64_t> moe{0};
};

class Model {
 public:
  // Opens, validates and binds. Errors name the file and the key or tensor.
  static Result<std::unique_ptr<Model>> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  // The file's views of every bound tensor (names, shapes, types, bytes).
  const ModelWeights& weights() const { return weights_; }
  const GgufFile& file() const { return *file_; }
  FfnDispatchCounters& counters() const { return counters_; }

  // The weights as `backend`'s device holds them: prepared by that backend the first time
  // (Backend::prepare: a CPU view or repack, a device upload — the costly step, which a caller
  // that wants it out of its first request runs here, right after making the backend), then
  // kept for the model's life and shared by every backend of the same device. Once prepared,
  // the file's pages behind tensors that no device reads in place are handed back to the kernel
  // (GgufFile::release_pages): a repacked or uploaded copy replaces the file's bytes instead of
  // doubling the memory. Error (nothing kept) when the backend cannot hold them; the message
  // names the bytes. Thread-safe.
  Result<const PreparedWeights*> weights_on(Backend& backend) const;

 private:
  Model() = default;
  // Hands back the pages of every tensor that no placement views in place.
  void release_unviewed_pages() const;

  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  mutable FfnDispatchCounters counters_;
  mutable std::mutex placements_mu_;
  // One per device, each freed (with the backend's copies) before the file it may view.
  mutable std::vector<std::unique_ptr<PreparedWeights>> placements_;
};

struct SessionOptions {
  int64_t capacity = 0;     // KV positions; required > 0
  KvType kv_type = KvType::kF32;
  int64_t max_batch = 512;  // tokens per forward chunk (prefill batch size)
  bool record_routing = false;
  // Negative control only: run the dense FFN even on an MoE model, to prove the guard fires.
  bool force_dense_ffn = false;
};

// Expert choices per layer, in the order tokens were processed: layer il's ids of token i are
// ids[il][i * k .. i * k + k), slot 0 the largest weight.
struct RoutingTrace {
  int64_t k = 0;
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<float>> weights;
};

class Session {
 public:
  Session(const Model& model, Backend& backend, const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The model's weights on the backend (Model::weights_on), the KV cache and the workspace are
  // taken here; when the backend cannot hold one of them, every forward() returns why.
  // Runs `tokens` at positions [cache().n_pos(), + n) in chunks of max_batch, appending to the
  // cache. logits: [n_vocab] of the last token, or when all_logits is non-null, every token's
  // logits appended there ([n, n_vocab]). Errors: a token id out of range, not enough cache
  // positions (nothing is written then), the dense-FFN guard, and a backend that could not hold
  // this session's weights, cache or buffers (the message names the bytes).
  Status forward(std::span<const int32_t> tokens, float* logits, std::vector<float>* all_logits = nullptr);

  // The session's cache (aborts when the backend could not make it: forward() says why).
  KvCache& cache();
  const KvCache& cache() const;
  const RoutingTrace& routing() const { return routing_; }
  const Model& model() const { return model_; }

 private:
  Status forward_chunk(const int32_t* tokens, int64_t n, float* logits_out, bool all);
  // The layers of one chunk, as backend ops only (Backend::run_step may replay them).
  Status issue_layers(int64_t n, int64_t pos0);
  // Copies this chunk's routing (n tokens, every layer) to routing_ (record_routing only).
  void record_routing(int64_t n);

  const Model& model_;
  Backend& backend_;
  SessionOptions options_;
  Status buffers_;  // why the weights, cache or workspace could not be taken, if one could not
  const PreparedWeights* weights_ = nullptr;  // the model's, on this backend's device
  std::unique_ptr<KvCache> cache_;            // made by the backend
  RoutingTrace routing_;
  // Workspace for max_batch (B) tokens in the backend's memory, allocated once.
  BackendArray<int32_t> tokens_;                          // [B]
  BackendArray<float> x_, xn_, q_, k_, v_, attn_, proj_;  // [B, n_embd] / [B, q_dim] / [B, kv_dim]
  BackendArray<int32_t> expert_ids_;                      // [n_layer (record_routing) or 1, B, n_expert_used]
  BackendArray<float> expert_weights_;                    // same shape
  BackendArray<float> logits_;                            // [rows, n_vocab], grown on demand
  // What the backend keeps of this session's steps (a recorded decode step); last, so it goes
  // first: a record may point at everything above.
  std::unique_ptr<Backend::StepRecord> step_record_;
};

// The reference path: no cache carried between calls — every call recomputes all of `tokens`
// in one batch from position 0 (same kernels as the cached path). Returns the last token's
// logits [n_vocab].
Result<std::vector<float>> forward_full(const Model& model, Backend& backend, std::span<const int32_t> tokens,
                                        KvType kv_type = KvType::kF32);

}  // namespace popper
