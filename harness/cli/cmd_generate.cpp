// `popper generate`: run the engine on a GGUF file from prompt token ids and print the generated
// ids and a timing line (prefill and decode tokens per second). --backend picks the compute
// backend (engine/model/backend_factory.h); the default is cpu so that results on a GPU machine
// do not change unless asked; auto takes CUDA when it is compiled in and a device answers.
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/model/backend_factory.h"
#include "engine/model/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

struct GenerateFlags {
  std::string model;
  std::string prompt_tokens;
  std::string prompt_text;
  int64_t max_tokens = 16;
  bool no_cache = false;
  int threads = 0;
  uint64_t seed = 0;
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  std::string kv_type = "f32";
  int64_t n_ctx = 0;
  int64_t batch = 512;
  std::string stop_ids;
  std::string backend = "cpu";
};

// "1,2,3" -> ids. Error names the bad item.
Result<std::vector<int32_t>> parse_ids(const std::string& flag, const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  int index = 0;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX) {
      return make_error(flag, ": item ", index, " '", item, "' is not a non-negative token id");
    }
    ids.push_back(int32_t(v));
    ++index;
  }
  return ids;
}

int run_generate(const GenerateFlags& f) {
  if (f.prompt_tokens.empty() == f.prompt_text.empty()) {
    std::fprintf(stderr, "popper generate: give exactly one of --prompt-tokens and --prompt\n");
    return 2;
  }
  GenerateOptions opt;
  opt.max_tokens = f.max_tokens;
  opt.use_cache = !f.no_cache;
  opt.n_ctx = f.n_ctx;
  opt.prefill_batch = f.batch;
  opt.sampling = {f.temperature, f.top_k, f.top_p, f.seed};
  if (!f.stop_ids.empty()) {
    auto stops = parse_ids("--stop-ids", f.stop_ids);
    if (!stops.ok()) {
      std::fprintf(stderr, "popper generate: %s\n", stops.message().c_str());
      return 2;
    }
    opt.stop_ids = stops.value();
  }
  auto kv = parse_kv_type(f.kv_type);
  if (!kv.ok()) {
    std::fprintf(stderr, "popper generate: %s\n", kv.message().c_str());
    return 2;
  }
  opt.kv_type = kv.value();
  auto backend_kind = parse_backend_kind(f.backend);
  if (!backend_kind.ok()) {
    std::fprintf(stderr, "popper generate: %s\n", backend_kind.message().c_str());
    return 2;
  }
  auto model = Model::load(f.model);
  if (!model.ok()) {
    std::fprintf(stderr, "popper generate: %s\n", model.message().c_str());
    return 2;
  }
  // The prompt: ids as given, or the text through the model's own tokenizer.
  std::optional<Tokenizer> tokenizer;
  Result<std::vector<int32_t>> prompt = std::vector<int32_t>{};
  if (!f.prompt_text.empty()) {
    auto tok = Tokenizer::from_gguf(model.value()->file());
    if (!tok.ok()) {
      std::fprintf(stderr, "popper generate: --prompt needs the model's tokenizer: %s\n",
                   tok.message().c_str());
      return 2;
    }
    tokenizer.emplace(std::move(tok.value()));
    prompt = tokenizer->encode(f.prompt_text);
  } else {
    prompt = parse_ids("--prompt-tokens", f.prompt_tokens);
  }
  if (!prompt.ok()) {
    std::fprintf(stderr, "popper generate: %s\n", prompt.message().c_str());
    return 2;
  }
  if (prompt->empty()) {
    std::fprintf(stderr, "popper generate: the prompt has no tokens\n");
    return 2;
  }
  // Made after the model so that a device backend uploads its weights once, here.
  auto backend = make_backend(backend_kind.value(), f.threads, model.value().get());
  if (!backend.ok()) {
    std::fprintf(stderr, "popper generate: --backend %s: %s\n", f.backend.c_str(), backend.message().c_str());
    return 2;
  }
  Backend& b = *backend.value();
  std::fprintf(stderr, "model: %s\nbackend: %s, %d threads, kv %s, %s\n",
               model.value()->config().summary().c_str(), b.name(), b.n_threads(), kv_type_name(opt.kv_type),
               opt.use_cache ? "cached" : "no cache (full recompute)");
  auto result = generate(*model.value(), b, prompt.value(), opt, [](int32_t tok) {
    std::printf("%d ", tok);
    std::fflush(stdout);
  });
  std::printf("\n");
  if (!result.ok()) {
    std::fprintf(stderr, "popper generate: %s\n", result.message().c_str());
    return 2;
  }
  const GenerateResult& r = result.value();
  if (tokenizer) {
    std::printf("text: %s\n", tokenizer->decode(r.tokens).c_str());
  }
  std::printf("finish: %s, %zu tokens\n", finish_reason_name(r.finish), r.tokens.size());
  std::printf(
      "timing: prefill %lld tokens in %.3f s (%.2f tok/s), decode %lld steps in %.3f s (%.2f tok/s), backend "
      "%s\n",
      static_cast<long long>(r.n_prompt), r.prefill_seconds, r.prefill_tok_per_s(),
      static_cast<long long>(r.decode_steps), r.decode_seconds, r.decode_tok_per_s(), b.name());
  return 0;
}

void register_generate(CLI::App& app) {
  static GenerateFlags f;
  CLI::App* cmd = add_command(app, "generate", "Generate tokens from a Qwen3 / Qwen3-MoE GGUF model",
                              [] { return run_generate(f); });
  cmd->add_option("--model", f.model, "GGUF model file")->required();
  cmd->add_option("--prompt-tokens", f.prompt_tokens, "Prompt token ids, comma-separated (e.g. 1,2,3)");
  cmd->add_option("--prompt", f.prompt_text, "Prompt text, tokenized with the model's own tokenizer");
  cmd->add_option("--max-tokens", f.max_tokens, "Tokens to generate at most")->capture_default_str();
  cmd->add_flag("--no-cache", f.no_cache, "Recompute the whole sequence every step (the reference path)");
  cmd->add_option("--threads", f.threads, "Compute threads (0: all cores)")->capture_default_str();
  cmd->add_option("--seed", f.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--temperature", f.temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", f.top_k, "Keep the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", f.top_p, "Nucleus mass in (0, 1]")->capture_default_str();
  cmd->add_option("--stop-ids", f.stop_ids, "Token ids that end generation, comma-separated");
  cmd->add_option("--kv-type", f.kv_type, "KV cache storage: f32 or f16")->capture_default_str();
  cmd->add_option("--ctx", f.n_ctx, "Context positions (0: prompt + max tokens + 8, capped at the model's)")
      ->capture_default_str();
  cmd->add_option("--batch", f.batch, "Prefill batch size in tokens")->capture_default_str();
  cmd->add_option(
         "--backend", f.backend,
         "Compute backend: cpu, cuda, or auto (cuda when compiled in and a device answers, else cpu)")
      ->capture_default_str();
}

}  // namespace
POPPER_REGISTER_COMMAND(40, register_generate);
}  // namespace popper::cli
