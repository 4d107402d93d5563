// The serving engine: one loaded model, its tokenizer and chat template, and --parallel slots,
// each with its own KV cache, behind a bounded admission queue.
//
// Backends (--backend, engine/model/backend_factory.h): on the CPU each slot owns a CpuBackend
// with its share of the threads, so slots compute in parallel. Any other backend (CUDA) is made
// once and SHARED by every slot: its weights are uploaded once and it has one stream and shared
// scratch, so it is not thread-safe; the engine serialises every Session::forward made on it
// with one mutex (forward_mu_). Slots then interleave per forward call (a prefill or one decode
// step), not per request.
//
// Dispatch: the architecture is resolved once, at load, through the model's arch registry
// (engine/model/model_config.h). Every completion runs through Slot::run, which calls
// Session::forward, which picks the FFN from that resolved arch: for qwen3moe only the expert
// FFN is reachable (the dense path is the guard). The model's FfnDispatchCounters count each
// path and /metrics shows them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/backend.h"
#include "engine/model/backend_factory.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

namespace popper::serve {

struct EngineOptions {
  std::string model_path;
  int threads = 0;                          // compute threads in all (0: every core), split across the slots
  int parallel = 1;                         // slots: requests generated at once
  int queue = 16;                           // requests that may wait for a slot; past that, 503
  int64_t ctx = 0;                          // KV positions per slot (0: min(4096, the model's context))
  KvType kv_type = KvType::kF16;            // llama.cpp's default KV type
  bool force_dense_ffn = false;             // negative control only (see SessionOptions)
  BackendKind backend = BackendKind::kCpu;  // --backend; kAuto: CUDA when it answers, else CPU
  // Share one backend across the slots even on the CPU: lets a machine without a GPU test the
  // shared-backend serialisation (falsifiers/backend_select_test.cpp). Not a CLI flag.
  bool share_backend = false;
};

// One generation's inputs.
struct RunParams {
  int64_t max_tokens = 0;  // > 0
  SamplingParams sampling;
  std::vector<std::string> stop;
};

enum class RunFinish { kStop, kLength, kCancelled };
const char* run_finish_name(RunFinish finish);  // "stop", "length", "cancelled"

struct RunOutcome {
  std::string text;  // the completion (bytes; cut before a stop string)
  int64_t n_prompt = 0;
  int64_t n_generated = 0;  // sampled tokens, without the stop token
  RunFinish finish = RunFinish::kLength;
  double queue_seconds = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

class Engine;

// A place in the admission queue, held from admission until the response is done. Destroying it
// releases the place.
class Ticket {
 public:
  explicit Ticket(Engine* engine) : engine_(engine) {}
  ~Ticket();
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;

 private:
  Engine* engine_;
};

class Engine {
 public:
  // Loads the model, tokenizer and chat template; allocates every slot. Errors name the file and
  // what is wrong (bad options included).
  static Result<std::unique_ptr<Engine>> load(const EngineOptions& options);
  ~Engine();

  const Model& model() const { return *model_; }
  const ArchSpec& arch() const { return *model_->config().arch; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const ChatTemplate& chat_template() const { return chat_template_; }
  const std::string& model_id() const { return model_id_; }
  int64_t n_ctx() const { return n_ctx_; }
  int parallel() const { return int(slots_.size()); }
  int queue_limit() const { return queue_limit_; }
  // The backend every slot runs on: "cpu" or "cuda" (what kAuto resolved to).
  const char* backend_name() const { return slots_.front()->backend->name(); }
  // True when the slots share one backend (and forward calls are serialised).
  bool backend_shared() const { return shared_backend_ != nullptr; }
  // Token ids that end a completion (end-of-generation tokens of the vocabulary).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }

  // A place in line, or nullptr when parallel + queue requests are already admitted.
  std::unique_ptr<Ticket> admit();
  int admitted() const;
  int busy_slots() const;

  // Waits for a free slot, then generates. on_text receives settled completion text as it grows
  // (never part of a stop string); returning false cancels (a client that went away). Errors come
  // from the forward pass (the dense-FFN guard among them).
  Result<RunOutcome> run(const std::vector<int32_t>& prompt, const RunParams& params,
                         const std::function<bool(const std::string&)>& on_text);

 private:
  friend class Ticket;
  struct Slot {
    std::unique_ptr<Backend> own_backend;  // this slot's CPU backend; null when shared_backend_ is used
    Backend* backend = nullptr;            // own_backend or shared_backend_
    std::unique_ptr<Session> session;
    std::vector<float> logits;  // [n_vocab]
    bool busy = false;
  };
  Engine(std::unique_ptr<Model> model, Tokenizer tokenizer, ChatTemplate tmpl)
      : model_(std::move(model)), tokenizer_(std::move(tokenizer)), chat_template_(tmpl) {}
  // slot.session->forward into slot.logits, under forward_mu_ when the backend is shared.
  Status forward(Slot& slot, std::span<const int32_t> tokens);
  Result<RunOutcome> run_on(Slot& slot, const std::vector<int32_t>& prompt, const RunParams& params,
                            const std::function<bool(const std::string&)>& on_text);

  std::unique_ptr<Model> model_;
  Tokenizer tokenizer_;
  ChatTemplate chat_template_;
  std::string model_id_;
  int64_t n_ctx_ = 0;
  int queue_limit_ = 0;
  std::vector<int32_t> stop_ids_;
  // Declared before slots_ so that it outlives their sessions.
  std::unique_ptr<Backend> shared_backend_;  // non-CPU backends: one for all slots
  std::mutex forward_mu_;                    // serialises Session::forward on shared_backend_
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mu_;
  std::condition_variable slot_free_;
  int admitted_ = 0;  // guarded by mu_
};

}  // namespace popper::serve
