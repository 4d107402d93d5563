#include "engine/model/generate.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "engine/core/faults.h"

namespace popper {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kContextFull: return "context_full";
  }
  return "?";
}

Result<GenerateResult> generate(const Model& model, Backend& backend, std::span<const int32_t> prompt,
                                const GenerateOptions& options, const std::function<void(int32_t)>& on_token) {
  POPPER_RETURN_IF_ERROR(validate(options.sampling));
  if (options.max_tokens < 1) return make_error("max_tokens: want >= 1, got ", options.max_tokens);
  if (options.prefill_batch < 1) return make_error("prefill_batch: want >= 1, got ", options.prefill_batch);
  if (options.n_ctx < 0) return make_error("n_ctx: want >= 0, got ", options.n_ctx);
  if (prompt.empty()) return make_error("prompt: no tokens");
  const ModelConfig& c = model.config();
  GenerateResult r;
  r.n_prompt = int64_t(prompt.size());
  r.n_ctx = options.n_ctx > 0 ? options.n_ctx : r.n_prompt + options.max_tokens + 8;
  r.n_ctx = std::min(r.n_ctx, c.n_ctx_train);
  if (r.n_prompt > r.n_ctx) {
    r.finish = FinishReason::kContextFull;
    return r;
  }

  Sampler sampler(options.sampling);
  std::vector<float> logits(c.n_vocab);
  std::optional<Session> session;
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());  // the no-cache path's whole input
  if (options.use_cache) {
    SessionOptions so;
    so.capacity = r.n_ctx;
    so.kv_type = options.kv_type;
    so.max_batch = options.prefill_batch;
    session.emplace(model, backend, so);
  }
  auto run = [&](std::span<const int32_t> tokens) -> Status {
    if (session) return session->forward(tokens, logits.data());
    auto full = forward_full(model, backend, sequence, options.kv_type);
    if (!full.ok()) return full.error();
    logits = std::move(full.value());
    return Status::success();
  };

  // Fault generate_context_off_by_one: one position too many counted as used.
  const int64_t ctx_limit = r.n_ctx - (fault_on(Fault::kGenerateContextOffByOne) ? 1 : 0);
  auto t0 = std::chrono::steady_clock::now();
  POPPER_RETURN_IF_ERROR(run(prompt));
  r.prefill_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  for (;;) {
    const int32_t tok = sampler.sample(logits);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), tok) != options.stop_ids.end()) {
      r.finish = FinishReason::kStop;
      break;
    }
    r.tokens.push_back(tok);
    if (on_token) on_token(tok);
    if (int64_t(r.tokens.size()) >= options.max_tokens) {
      r.finish = FinishReason::kLength;
      break;
    }
    // The new token needs a position of its own before it can be run.
    if (r.n_prompt + int64_t(r.tokens.size()) >= ctx_limit) {
      r.finish = FinishReason::kContextFull;
      break;
    }
    sequence.push_back(tok);
    POPPER_RETURN_IF_ERROR(run({&tok, 1}));
    ++r.decode_steps;
  }
  r.decode_seconds = seconds_since(t0);
  return r;
}

}  // namespace popper
