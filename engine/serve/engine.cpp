#include "engine/serve/engine.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "engine/core/log.h"
#include "engine/model/cpu_backend.h"
#include "engine/serve/text_util.h"

namespace popper::serve {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// End-of-generation token texts, as llama.cpp's vocabulary marks them for ChatML models: the
// turn end, the document end, and the fill-in-the-middle pad / separators of Qwen2.5+ vocabs.
constexpr const char* kEndOfGenerationTexts[] = {"<|im_end|>", "<|endoftext|>", "<|fim_pad|>",
                                                 "<|repo_name|>", "<|file_sep|>"};

constexpr int64_t kDefaultCtx = 4096;  // per slot, when --ctx is not given (capped at the model's)

}  // namespace

const char* run_finish_name(RunFinish finish) {
  switch (finish) {
    case RunFinish::kStop:
      return "stop";
    case RunFinish::kLength:
      return "length";
    case RunFinish::kCancelled:
      return "cancelled";
  }
  return "?";
}

Ticket::~Ticket() {
  std::lock_guard<std::mutex> lock(engine_->mu_);
  --engine_->admitted_;
}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const EngineOptions& o) {
  if (o.parallel < 1 || o.parallel > 256) return make_error("--parallel: want 1..256, got ", o.parallel);
  if (o.queue < 0 || o.queue > 4096) return make_error("--queue: want 0..4096, got ", o.queue);
  if (o.ctx < 0) return make_error("--ctx: want >= 0, got ", o.ctx);
  if (o.threads < 0) return make_error("--threads: want >= 0, got ", o.threads);
  auto model = Model::load(o.model_path);
  if (!model.ok()) return model.error();
  auto tokenizer = Tokenizer::from_gguf(model.value()->file());
  if (!tokenizer.ok()) return make_error(o.model_path, ": tokenizer: ", tokenizer.message());
  auto tmpl = ChatTemplate::from_gguf(model.value()->file());
  if (!tmpl.ok()) return make_error(o.model_path, ": chat template: ", tmpl.message());

  std::unique_ptr<Engine> e(new Engine(std::move(model.value()), std::move(tokenizer.value()), tmpl.value()));
  const ModelConfig& c = e->model_->config();
  if (e->tokenizer_.n_vocab() > c.n_vocab) {
    return make_error(o.model_path, ": tokenizer has ", e->tokenizer_.n_vocab(),
                      " tokens but token_embd has ", c.n_vocab, " rows");
  }
  e->model_id_ = std::filesystem::path(o.model_path).filename().string();
  e->n_ctx_ = o.ctx > 0 ? o.ctx : std::min(kDefaultCtx, c.n_ctx_train);
  if (e->n_ctx_ > c.n_ctx_train) {
    return make_error("--ctx ", o.ctx, ": the model's context is ", c.n_ctx_train, " positions");
  }
  if (e->n_ctx_ < 2) return make_error("--ctx: want >= 2 positions, got ", e->n_ctx_);
  e->queue_limit_ = o.queue;
  if (auto eos = e->tokenizer_.eos_id()) e->stop_ids_.push_back(*eos);
  for (const char* text : kEndOfGenerationTexts) {
    if (auto id = e->tokenizer_.find_token(text)) e->stop_ids_.push_back(*id);
  }
  std::sort(e->stop_ids_.begin(), e->stop_ids_.end());
  e->stop_ids_.erase(std::unique(e->stop_ids_.begin(), e->stop_ids_.end()), e->stop_ids_.end());

  const int total_threads =
      o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const int per_slot = std::max(1, total_threads / o.parallel);
  SessionOptions so;
  so.capacity = e->n_ctx_;
  so.kv_type = o.kv_type;
  so.force_dense_ffn = o.force_dense_ffn;
  // The first backend decides: a CpuBackend (asked for, or what kAuto fell back to) is made once
  // per slot; anything else is shared by all slots. Either way the model's weights are prepared
  // here, once per device (per-slot CPU backends share the host's copy).
  // per-slot CPU backends split the threads; a shared one runs one forward at a time with them all.
  auto first = make_backend(o.backend, o.share_backend ? total_threads : per_slot, e->model_.get());
  if (!first.ok()) return make_error("--backend: ", first.message());
  const bool per_slot_backends = dynamic_cast<CpuBackend*>(first.value().get()) != nullptr;
  if (!per_slot_backends || o.share_backend) e->shared_backend_ = std::move(first.value());
  for (int i = 0; i < o.parallel; ++i) {
    auto slot = std::make_unique<Slot>();
    if (e->shared_backend_) {
      slot->backend = e->shared_backend_.get();
    } else {
      slot->own_backend = i == 0 ? std::move(first.value()) : std::make_unique<CpuBackend>(per_slot);
      slot->backend = slot->own_backend.get();
    }
    slot->session = std::make_unique<Session>(*e->model_, *slot->backend, so);
    slot->logits.resize(size_t(c.n_vocab));
    e->slots_.push_back(std::move(slot));
  }
  log_info("model: ", c.summary());
  log_info("dispatch: arch ", c.arch->name, " resolved at load -> ", c.is_moe() ? "moe" : "dense",
           " FFN path", o.force_dense_ffn ? " (forced dense: negative control)" : "");
  if (e->shared_backend_) {
    log_info("backend: ", e->backend_name(), ", one shared by all ", o.parallel, " slots (",
             e->shared_backend_->n_threads(), " threads; forward calls serialised)");
  } else {
    log_info("backend: ", e->backend_name(), ", one per slot, ", per_slot, " threads each");
  }
  log_info("slots: ", o.parallel, " x ", e->n_ctx_, " positions (kv ", kv_type_name(o.kv_type), "), queue ",
           o.queue, "; chat template ", chat_template_family_name(e->chat_template_.family()));
  return e;
}

std::unique_ptr<Ticket> Engine::admit() {
  std::lock_guard<std::mutex> lock(mu_);
  if (admitted_ >= int(slots_.size()) + queue_limit_) return nullptr;
  ++admitted_;
  return std::make_unique<Ticket>(this);
}

int Engine::admitted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return admitted_;
}

int Engine::busy_slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int(std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s->busy; }));
}

Result<RunOutcome> Engine::run(const std::vector<int32_t>& prompt, const RunParams& params,
                               const std::function<bool(const std::string&)>& on_text) {
  const auto t_queue = std::chrono::steady_clock::now();
  Slot* slot = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    slot_free_.wait(lock, [&] {
      for (auto& s : slots_) {
        if (!s->busy) {
          slot = s.get();
          return true;
        }
      }
      return false;
    });
    slot->busy = true;
  }
  const double queue_seconds = seconds_since(t_queue);
  auto result = run_on(*slot, prompt, params, on_text);
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot->busy = false;
  }
  slot_free_.notify_one();
  if (result.ok()) result.value().queue_seconds = queue_seconds;
  return result;
}

Status Engine::forward(Slot& slot, std::span<const int32_t> tokens) {
  if (!shared_backend_) return slot.session->forward(tokens, slot.logits.data());
  std::lock_guard<std::mutex> lock(forward_mu_);
  return slot.session->forward(tokens, slot.logits.data());
}

Result<RunOutcome> Engine::run_on(Slot& slot, const std::vector<int32_t>& prompt, const RunParams& params,
                                  const std::function<bool(const std::string&)>& on_text) {
  POPPER_RETURN_IF_ERROR(validate(params.sampling));
  if (params.max_tokens < 1) return make_error("max_tokens: want >= 1, got ", params.max_tokens);
  if (prompt.empty()) return make_error("prompt: no tokens");
  if (int64_t(prompt.size()) >= n_ctx_) {
    return make_error("prompt has ", prompt.size(), " tokens; the context holds ", n_ctx_);
  }
  RunOutcome out;
  out.n_prompt = int64_t(prompt.size());
  Session& session = *slot.session;
  session.cache().truncate(0);  // every request starts from an empty cache: no state leaks between them
  Sampler sampler(params.sampling);
  StreamDecoder decoder(tokenizer_);
  StopMatcher matcher(params.stop);
  bool cancelled = false;
  auto emit = [&](const std::string& ready) {
    if (!ready.empty() && !cancelled && on_text && !on_text(ready)) cancelled = true;
  };

  auto t0 = std::chrono::steady_clock::now();
  POPPER_RETURN_IF_ERROR(forward(slot, prompt));
  out.prefill_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  for (;;) {
    const int32_t tok = sampler.sample(slot.logits);
    if (std::binary_search(stop_ids_.begin(), stop_ids_.end(), tok)) {
      out.finish = RunFinish::kStop;
      break;
    }
    ++out.n_generated;
    if (tokenizer_.valid_id(tok)) matcher.append(decoder.push(tok));
    emit(matcher.take_ready());
    if (cancelled) {
      out.finish = RunFinish::kCancelled;
      break;
    }
    if (matcher.stopped()) {
      out.finish = RunFinish::kStop;
      break;
    }
    // The next token needs a position of its own; a full context ends like max_tokens.
    if (out.n_generated >= params.max_tokens || out.n_prompt + out.n_generated >= n_ctx_) {
      out.finish = RunFinish::kLength;
      break;
    }
    POPPER_RETURN_IF_ERROR(forward(slot, {&tok, 1}));
  }
  out.decode_seconds = seconds_since(t0);
  if (out.finish != RunFinish::kCancelled) {
    if (!matcher.stopped()) matcher.append(decoder.finish());
    emit(matcher.finish());
    if (cancelled) out.finish = RunFinish::kCancelled;
  }
  out.text = matcher.text();
  return out;
}

}  // namespace popper::serve
