// `popper perplexity`: a model's perplexity over a text, and its divergence from a base model,
// computed the way llama.cpp's llama-perplexity computes them, so the figures stand beside its
// own on the same files:
//  - the text is tokenised whole (special tokens not parsed unless parse_special, BOS first when
//    the vocabulary's tokenizer.ggml.add_bos_token says so) and cut into n_chunk = min(--chunks, n_tokens /
//    n_ctx) chunks of n_ctx tokens; at least 2 * n_ctx tokens are needed;
//  - each chunk runs from an empty KV cache (its first token replaced by BOS when add_bos), and
//    only its second half is scored: the logits at positions n_ctx/2 .. n_ctx-2 against the next
//    token, so every scored token has at least n_ctx/2 tokens of context;
//  - with a base, the base's log-probs are stored as llama.cpp stores them (16-bit codes, see
//    engine/eval/scoring.h) and KL, top-1 agreement, Δp and ln(PPL/PPL_base) are accumulated with
//    its formulas. The base is a GGUF run here (on the same chunks, tokenised by the base's own
//    tokenizer as llama-perplexity --kl-divergence-base does) or a base file llama-perplexity
//    wrote (its tokens are used, and its n_ctx).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/eval/scoring.h"
#include "engine/model/backend_factory.h"
#include "engine/model/kv_cache.h"

namespace popper::eval {

struct PerplexityJob {
  std::string model;         // GGUF path
  std::string text;          // text file (ignored when kl_base is a base logits file)
  std::string kl_base;       // optional: a base GGUF, or a llama-perplexity base logits file
  std::string save_kl_base;  // optional: write this model's log-probs as a base logits file
  int64_t n_ctx = 512;       // llama-perplexity's default -c
  int64_t n_chunks = -1;     // -1: every whole chunk
  int64_t n_batch = 512;     // tokens per forward call; changes no figure
  // Control tokens written in the text ("<|im_start|>") become their ids. llama-perplexity
  // always reads them as plain text; chat transcripts need them parsed, and the llama.cpp side
  // then scores the same tokens through a base file (scripts/make_quant_quality.py).
  bool parse_special = false;
  KvType kv_type = KvType::kF16;  // llama.cpp's default cache type
  BackendKind backend = BackendKind::kCpu;
  int n_threads = 0;  // <= 0: one per hardware thread
};

struct PerplexityProgress {
  int64_t chunks_done, n_chunk;
  double ppl;                           // running
  std::optional<double> kld, same_top;  // running, with a base
  double seconds;
};

struct PerplexityResult {
  int64_t n_tokens = 0;  // the text's tokens (or the base file's)
  int64_t n_ctx = 0, n_chunk = 0, n_scored = 0;
  bool add_bos = false;
  // Without a base: llama-perplexity's "Final estimate: PPL = x +/- y"; with one, its
  // "Mean PPL(Q)" (the same nll, accumulated in float as its KL mode does).
  Estimate ppl;
  std::vector<double> chunk_ppl;  // running PPL after each chunk ("[1]x,[2]y,...")
  std::optional<KlSummary> kl;
  std::vector<std::string> warnings;  // e.g. n_ctx beyond the model's training context
  double seconds = 0;
};

// Runs the job. Errors name the file and what is wrong: a model that does not load, a text too
// short for two chunks, a base with another vocabulary size, a corrupt base logits file,
// bad sizes (n_ctx < 4, n_batch < 1), kl_base and save_kl_base together.
Result<PerplexityResult> evaluate_perplexity(
    const PerplexityJob& job, const std::function<void(const PerplexityProgress&)>& progress = {});

}  // namespace popper::eval
