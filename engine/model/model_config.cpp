#include "engine/model/model_config.h"

#include <array>
#include <optional>

namespace popper {
namespace {

constexpr std::array<ArchSpec, 2> kArchs = {{
    {"qwen3", FfnKind::kDense},
    {"qwen3moe", FfnKind::kMoe},
}};

std::string registered_list() {
  std::string out;
  for (const auto& a : kArchs) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}

// Reads `{arch}.{suffix}` as a positive integer. `required` false returns nullopt when absent.
Result<std::optional<int64_t>> read_int(const GgufFile& file, const std::string& arch, const char* suffix,
                                        bool required) {
  const std::string key = arch + "." + suffix;
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (!required) return std::optional<int64_t>{};
    return make_error(file.path(), ": ", key, ": missing (required for arch ", arch, ")");
  }
  auto n = v->as_i64();
  if (!n || *n <= 0) {
    return make_error(file.path(), ": ", key, ": want a positive integer, got ", v->summary());
  }
  return std::optional<int64_t>(*n);
}

Result<std::optional<double>> read_float(const GgufFile& file, const std::string& arch, const char* suffix,
                                         bool required) {
  const std::string key = arch + "." + suffix;
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (!required) return std::optional<double>{};
    return make_error(file.path(), ": ", key, ": missing (required for arch ", arch, ")");
  }
  auto f = v->as_f64();
  if (!f || !(*f > 0.0)) return make_error(file.path(), ": ", key, ": want a positive number, got ", v->summary());
  return std::optional<double>(*f);
}

}  // namespace

std::span<const ArchSpec> registered_archs() { return kArchs; }

const ArchSpec* find_arch(std::string_view name) {
  for (const auto& a : kArchs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string ModelConfig::summary() const {
  std::string s = str_cat(arch->name, ": ", n_layer, " layers, n_embd ", n_embd, ", ", n_head, "/", n_head_kv,
                          " heads x ", head_dim, ", vocab ", n_vocab, ", ctx ", n_ctx_train);
  if (is_moe()) {
    s += str_cat(", ", n_expert, " experts (", n_expert_used, " used) x ", n_ff_exp);
  } else {
    s += str_cat(", n_ff ", n_ff);
  }
  return s + str_cat(", rope base ", rope_freq_base, ", rms eps ", rms_eps);
}

Result<ModelConfig> read_model_config(const GgufFile& file) {
  const GgufValue* arch_v = file.find("general.architecture");
  if (arch_v == nullptr || arch_v->as_string() == nullptr) {
    return make_error(file.path(), ": general.architecture: missing or not a string");
  }
  const std::string arch = *arch_v->as_string();
  ModelConfig c;
  c.arch = find_arch(arch);
  if (c.arch == nullptr) {
    return make_error(file.path(), ": general.architecture: unknown arch '", arch, "' (registered: ",
                      registered_list(), ")");
  }
  const bool moe = c.is_moe();

#define POPPER_READ_INT(field, suffix, required)                     \
  do {                                                               \
    auto r = read_int(file, arch, suffix, required);                 \
    if (!r.ok()) return r.error();                                   \
    if (r.value().has_value()) c.field = *r.value();                 \
  } while (0)
  POPPER_READ_INT(n_layer, "block_count", true);
  POPPER_READ_INT(n_embd, "embedding_length", true);
  POPPER_READ_INT(n_head, "attention.head_count", true);
  POPPER_READ_INT(n_head_kv, "attention.head_count_kv", true);
  POPPER_READ_INT(head_dim, "attention.key_length", true);
  POPPER_READ_INT(n_ctx_train, "context_length", true);
  POPPER_READ_INT(n_ff, "feed_forward_length", !moe);
  if (moe) {
    POPPER_READ_INT(n_expert, "expert_count", true);
    POPPER_READ_INT(n_expert_used, "expert_used_count", true);
    POPPER_READ_INT(n_ff_exp, "expert_feed_forward_length", true);
  }
#undef POPPER_READ_INT
  int64_t value_length = c.head_dim;
  {
    auto r = read_int(file, arch, "attention.value_length", false);
    if (!r.ok()) return r.error();
    if (r.value()) value_length = *r.value();
  }
  {
    auto r = read_float(file, arch, "rope.freq_base", false);
    if (!r.ok()) return r.error();
    if (r.value()) c.rope_freq_base = static_cast<float>(*r.value());
  }
  {
    auto r = read_float(file, arch, "attention.layer_norm_rms_epsilon", true);
    if (!r.ok()) return r.error();
    c.rms_eps = static_cast<float>(*r.value());
  }

  const std::string where = file.path() + ": " + arch + ".";
  if (value_length != c.head_dim) {
    return make_error(where, "attention.value_length: want it equal to key_length ", c.head_dim, ", got ",
                      value_length);
  }
  if (c.head_dim % 2 != 0) return make_error(where, "attention.key_length: want an even head_dim (RoPE pairs), got ", c.head_dim);
  if (c.n_head % c.n_head_kv != 0) {
    return make_error(where, "attention.head_count_kv: want a divisor of head_count ", c.n_head, ", got ",
                      c.n_head_kv);
  }
  if (moe && c.n_expert_used > c.n_expert) {
    return make_error(where, "expert_used_count: want <= expert_count ", c.n_expert, ", got ", c.n_expert_used);
  }
  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) return make_error(file.path(), ": tensor 'token_embd.weight': missing");
  if (embd->dims.size() != 2) {
    return make_error(file.path(), ": tensor 'token_embd.weight': want 2 dims, got ", embd->shape_string());
  }
  c.n_vocab = embd->dims[1];
  return c;
}

}  // namespace popper
