#include "engine/synth/synth.h"

#include "engine/gguf/gguf_writer.h"
#include "engine/synth/tensor_plan.h"
#include "engine/synth/vocab.h"
#include "engine/synth/weights.h"

namespace popper {
namespace {

// The tiny presets: every code path of the real models (GQA with 2 query heads per KV head,
// 8 experts with 2 used, Q4_K_M's Q4_K and Q6_K layers) at a size that builds in a fraction of
// a second. Row lengths are multiples of 256 so every k-quant applies.
SynthShape tiny_shape(SynthArch arch) {
  SynthShape s;
  s.n_layer = 4;
  s.n_embd = 256;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.n_vocab = 2048;
  s.n_ctx_train = 4096;
  if (arch == SynthArch::kQwen3Moe) {
    s.n_expert = 8;
    s.n_expert_used = 2;
    s.n_ff_exp = 256;
    s.n_ff = 512;
  } else {
    s.n_ff = 512;
  }
  return s;
}

// Qwen3-30B-A3B (config.json of Qwen/Qwen3-30B-A3B): 48 layers, hidden 2048, 32 query heads,
// 4 KV heads, head_dim 128, 128 experts with 8 used, moe_intermediate_size 768,
// intermediate_size 6144, vocab 151936, max_position_embeddings 40960, rope_theta 1e6.
SynthShape a3b_shape() {
  SynthShape s;
  s.n_layer = 48;
  s.n_embd = 2048;
  s.n_head = 32;
  s.n_head_kv = 4;
  s.head_dim = 128;
  s.n_ff = 6144;
  s.n_expert = 128;
  s.n_expert_used = 8;
  s.n_ff_exp = 768;
  s.n_vocab = 151936;
  s.n_ctx_train = 40960;
  return s;
}

void add_hparams(GgufWriter& w, SynthArch arch, const SynthShape& s) {
  const std::string a = synth_arch_name(arch);
  auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  w.add_kv(a + ".block_count", u32(s.n_layer));
  w.add_kv(a + ".context_length", u32(s.n_ctx_train));
  w.add_kv(a + ".embedding_length", u32(s.n_embd));
  w.add_kv(a + ".feed_forward_length", u32(s.n_ff));
  w.add_kv(a + ".attention.head_count", u32(s.n_head));
  w.add_kv(a + ".attention.head_count_kv", u32(s.n_head_kv));
  w.add_kv(a + ".rope.freq_base", GgufValue::f32(static_cast<float>(s.rope_freq_base)));
  w.add_kv(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(static_cast<float>(s.rms_eps)));
  w.add_kv(a + ".attention.key_length", u32(s.head_dim));
  w.add_kv(a + ".attention.value_length", u32(s.head_dim));
  if (arch == SynthArch::kQwen3Moe) {
    w.add_kv(a + ".expert_used_count", u32(s.n_expert_used));
    w.add_kv(a + ".expert_count", u32(s.n_expert));
    w.add_kv(a + ".expert_feed_forward_length", u32(s.n_ff_exp));
  }
}

}  // namespace

Result<SynthArch> parse_synth_arch(const std::string& name) {
  if (name == "qwen3") return SynthArch::kQwen3;
  if (name == "qwen3moe") return SynthArch::kQwen3Moe;
  return make_error("unknown arch '", name, "': expected qwen3 or qwen3moe");
}

Result<SynthQuant> parse_synth_quant(const std::string& name) {
  if (name == "f32") return SynthQuant::kF32;
  if (name == "q8_0") return SynthQuant::kQ8_0;
  if (name == "q4_k_m") return SynthQuant::kQ4_K_M;
  return make_error("unknown quant '", name, "': expected f32, q8_0 or q4_k_m");
}

const char* synth_arch_name(SynthArch arch) { return arch == SynthArch::kQwen3 ? "qwen3" : "qwen3moe"; }

const char* synth_quant_name(SynthQuant quant) {
  switch (quant) {
    case SynthQuant::kF32: return "f32";
    case SynthQuant::kQ8_0: return "q8_0";
    case SynthQuant::kQ4_K_M: return "q4_k_m";
  }
  return "?";
}

Result<SynthShape> synth_shape(const SynthOptions& options) {
  SynthShape s;
  if (options.preset == "tiny") {
    s = tiny_shape(options.arch);
  } else if (options.preset == "30b-a3b") {
    if (options.arch != SynthArch::kQwen3Moe)
      return make_error("preset 30b-a3b is a qwen3moe shape; use --arch qwen3moe (qwen3 has preset tiny)");
    s = a3b_shape();
  } else {
    return make_error("unknown preset '", options.preset, "': expected tiny or 30b-a3b");
  }
  if (options.layers < 0 || options.layers > 1024)
    return make_error("--layers ", options.layers, " out of range: expected 1..1024 (0 = the preset's ", s.n_layer, ")");
  if (options.layers > 0) s.n_layer = options.layers;
  return s;
}

Status synth_model(const SynthOptions& options, const std::string& path,
                   const std::function<void(const SynthProgress&)>& progress) {
  auto shape = synth_shape(options);
  if (!shape.ok()) return shape.error();
  const SynthShape& s = shape.value();
  const std::string arch = synth_arch_name(options.arch);

  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string(arch));
  w.add_kv("general.type", GgufValue::string("model"));
  w.add_kv("general.name", GgufValue::string("popper-synth " + arch + " " + options.preset));
  w.add_kv("general.size_label", GgufValue::string(options.preset));
  w.add_kv("popper.synth.seed", GgufValue::u64(options.seed));
  w.add_kv("popper.synth.preset", GgufValue::string(options.preset));
  add_hparams(w, options.arch, s);
  add_tokenizer_metadata(w, build_synth_vocab(s.n_vocab));
  w.add_kv("general.quantization_version", GgufValue::u32(2));
  w.add_kv("general.file_type", GgufValue::u32(synth_file_type(options.quant)));

  // Large presets draw k-quant blocks directly (see weights.h); small ones quantise floats.
  const bool direct_blocks = options.preset != "tiny";
  for (PlannedTensor& t : plan_tensors(options.arch, s, options.quant)) {
    auto dims = t.dims;
    auto name = t.name;
    auto type = t.type;
    w.add_tensor(std::move(name), type, std::move(dims),
                 [t = std::move(t), seed = options.seed, direct_blocks](std::span<uint8_t> out) {
                   return fill_synth_tensor(t, seed, direct_blocks, out);
                 });
  }
  std::function<void(size_t, size_t, uint64_t, uint64_t)> on_tensor;
  if (progress) {
    on_tensor = [&](size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total) {
      progress(SynthProgress{done, total, bytes_done, bytes_total});
    };
  }
  return w.write(path, on_tensor);
}

}  // namespace popper
