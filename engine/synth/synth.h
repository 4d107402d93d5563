// Synthetic Qwen3 / Qwen3-MoE GGUF models of any shape, built deterministically from a seed.
//
// No weights can be downloaded, so Popper makes its own: every metadata key and tensor llama.cpp
// requires for the arch, with the real names, shapes and (for q4_k_m) llama.cpp's Q4_K_M type
// recipe, plus a real byte-level BPE tokenizer (engine/synth/vocab.h). Output bytes depend only
// on the options: same file on every machine and compiler.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/core/result.h"

namespace popper {

enum class SynthArch { kQwen3, kQwen3Moe };
enum class SynthQuant { kF32, kQ8_0, kQ4_K_M };

// Hyper-parameters, named as in GGUF metadata / llama.cpp hparams.
struct SynthShape {
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // key_length == value_length
  int64_t n_ff = 0;           // dense FFN width (qwen3)
  int64_t n_expert = 0;       // qwen3moe
  int64_t n_expert_used = 0;  // qwen3moe
  int64_t n_ff_exp = 0;       // qwen3moe expert FFN width
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  double rope_freq_base = 1e6;
  double rms_eps = 1e-6;
};

struct SynthOptions {
  SynthArch arch = SynthArch::kQwen3Moe;
  std::string preset = "tiny";  // "tiny" (both archs) or "30b-a3b" (qwen3moe)
  int64_t layers = 0;           // 0: the preset's layer count
  SynthQuant quant = SynthQuant::kF32;
  uint64_t seed = 0;
};

// The shape a preset names, with `layers` applied. Error for an unknown preset/arch pair.
Result<SynthShape> synth_shape(const SynthOptions& options);

// Parses "qwen3"/"qwen3moe", "f32"/"q8_0"/"q4_k_m".
Result<SynthArch> parse_synth_arch(const std::string& name);
Result<SynthQuant> parse_synth_quant(const std::string& name);
const char* synth_arch_name(SynthArch arch);
const char* synth_quant_name(SynthQuant quant);

struct SynthProgress {
  size_t tensors_done, tensors_total;
  uint64_t bytes_done, bytes_total;
};

// Builds the model and writes it atomically to `path`.
Status synth_model(const SynthOptions& options, const std::string& path,
                   const std::function<void(const SynthProgress&)>& progress = {});

}  // namespace popper
