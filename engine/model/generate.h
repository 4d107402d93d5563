// Generation: prefill the prompt, then sample one token per step until a stop id, max_tokens,
// or a full context. Prefill and decode are timed separately.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"

namespace popper {

enum class FinishReason { kStop, kLength, kContextFull };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "context_full"

struct GenerateOptions {
  int64_t max_tokens = 16;
  std::vector<int32_t> stop_ids;  // a stop id ends generation and is not part of the output
  SamplingParams sampling;
  bool use_cache = true;          // false: full recompute every step (the reference path)
  KvType kv_type = KvType::kF32;
  int64_t prefill_batch = 512;    // tokens per prefill chunk (cached path)
  // Context positions. 0: min(context_length, prompt + max_tokens + 8). Otherwise this many,
  // capped at context_length; generation ends with context_full when they run out.
  int64_t n_ctx = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated, without the prompt or the stop id
  FinishReason finish = FinishReason::kLength;
  int64_t n_prompt = 0;
  int64_t n_ctx = 0;            // positions the context held
  double prefill_seconds = 0;   // the first forward (the whole prompt)
  double decode_seconds = 0;    // every later forward and all sampling
  int64_t decode_steps = 0;     // forwards after the prefill
  double prefill_tok_per_s() const { return prefill_seconds > 0 ? double(n_prompt) / prefill_seconds : 0; }
  double decode_tok_per_s() const { return decode_seconds > 0 ? double(decode_steps) / decode_seconds : 0; }
};

// on_token (optional) sees each token as it is produced. Errors: bad options, an empty prompt,
// a token out of range, the dense-FFN guard.
Result<GenerateResult> generate(const Model& model, Backend& backend, std::span<const int32_t> prompt,
                                const GenerateOptions& options,
                                const std::function<void(int32_t)>& on_token = {});

}  // namespace popper
