// Model hyper-parameters read from GGUF metadata, and the table of architectures Popper runs.
//
// Nothing here is hard-coded per model: Qwen3-Coder uses rope base 1e7 and Qwen3-30B-A3B 1e6,
// and both come from `{arch}.rope.freq_base`. Architectures are rows of a table (llama.cpp's
// lesson: never a central switch), each naming its FFN kind and the keys it requires.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/core/result.h"
#include "engine/gguf/gguf_reader.h"

namespace popper {

enum class FfnKind { kDense, kMoe };

struct ArchSpec {
  std::string_view name;  // general.architecture value: "qwen3", "qwen3moe"
  FfnKind ffn;
};

// Every registered architecture.
std::span<const ArchSpec> registered_archs();
// nullptr when `name` is not registered.
const ArchSpec* find_arch(std::string_view name);

// Names follow llama.cpp's hparams.
struct ModelConfig {
  const ArchSpec* arch = nullptr;
  int64_t n_layer = 0;        // {arch}.block_count
  int64_t n_embd = 0;         // {arch}.embedding_length
  int64_t n_head = 0;         // {arch}.attention.head_count
  int64_t n_head_kv = 0;      // {arch}.attention.head_count_kv
  int64_t head_dim = 0;       // {arch}.attention.key_length (== value_length, checked)
  int64_t n_ctx_train = 0;    // {arch}.context_length
  int64_t n_ff = 0;           // {arch}.feed_forward_length (dense archs)
  int64_t n_expert = 0;       // {arch}.expert_count (MoE archs)
  int64_t n_expert_used = 0;  // {arch}.expert_used_count (MoE archs)
  int64_t n_ff_exp = 0;       // {arch}.expert_feed_forward_length (MoE archs)
  int64_t n_vocab = 0;        // from token_embd's shape (the tokenizer arrays may be absent)
  float rope_freq_base = 10000.0f;  // {arch}.rope.freq_base (llama.cpp's default when absent)
  float rms_eps = 1e-6f;            // {arch}.attention.layer_norm_rms_epsilon

  bool is_moe() const { return arch->ffn == FfnKind::kMoe; }
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  // One line for logs: "qwen3moe: 48 layers, n_embd 2048, 32/4 heads x 128, 128 experts (8 used) ..."
  std::string summary() const;
};

// Reads and checks the config. Errors name the file and the key: "m.gguf: qwen3moe.expert_count:
// missing (required for arch qwen3moe)"; "m.gguf: general.architecture: unknown arch 'llama'
// (registered: qwen3, qwen3moe)".
Result<ModelConfig> read_model_config(const GgufFile& file);

}  // namespace popper
