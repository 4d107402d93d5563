#include "engine/quant/recipe.h"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <optional>

namespace popper {
namespace {

struct FtypeInfo {
  QuantFtype ftype;
  const char* name;
  GgmlType base;
};

constexpr FtypeInfo kFtypes[] = {
    {QuantFtype::kAllF32, "f32", GgmlType::F32},     {QuantFtype::kQ8_0, "q8_0", GgmlType::Q8_0},
    {QuantFtype::kQ4_K_M, "q4_k_m", GgmlType::Q4_K}, {QuantFtype::kQ5_K_M, "q5_k_m", GgmlType::Q5_K},
    {QuantFtype::kQ6_K, "q6_k", GgmlType::Q6_K},
};

const FtypeInfo& info(QuantFtype ftype) {
  for (const auto& f : kFtypes) {
    if (f.ftype == ftype) return f;
  }
  POPPER_CHECK(false, "QuantFtype ", static_cast<uint32_t>(ftype), " has no table entry");
}

// llama.cpp's tensor_category, for the names qwen3 / qwen3moe files hold (substring matches,
// first match wins, in llama.cpp's order).
enum class Category {
  kTokenEmbd,
  kAttnQ,
  kAttnV,
  kAttnK,
  kAttnOutput,
  kFfnUp,
  kFfnGate,
  kFfnDown,
  kOutput,
  kOther
};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight") return Category::kTokenEmbd;
  // attn_qkv and attn_kv_b count as attn_v in llama.cpp (category_is_attn_v).
  if (contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight") ||
      contains(name, "attn_v.weight"))
    return Category::kAttnV;
  if (contains(name, "attn_k.weight")) return Category::kAttnK;
  if (contains(name, "attn_q.weight")) return Category::kAttnQ;
  if (contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (contains(name, "ffn_up")) return Category::kFfnUp;
  if (contains(name, "ffn_gate")) return Category::kFfnGate;
  if (contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// llama.cpp's tensor_allows_quantization, for these archs: 2+ dims, a name ending in "weight",
// not a norm, not the router.
bool allows_quantization(const RecipeTensor& t) {
  if (t.dims.size() < 2) return false;
  if (!t.name.ends_with("weight")) return false;
  if (contains(t.name, "_norm.weight")) return false;
  if (contains(t.name, "ffn_gate_inp.weight")) return false;
  return true;
}

// The N of "blk.N." (sscanf("blk.%d.") in llama.cpp), or nullopt.
std::optional<int64_t> layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return std::nullopt;
  size_t i = 4;
  int64_t n = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && n < (int64_t{1} << 40))
    n = n * 10 + (name[i++] - '0');
  if (i == 4) return std::nullopt;
  return n;
}

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// The fallback llama.cpp's tensor_type_fallback would pick, for the error message.
const char* llama_fallback_name(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K:
      return "q5_0";
    case GgmlType::Q5_K:
      return "q5_1";
    case GgmlType::Q6_K:
      return "q8_0";
    default:
      return "f16";
  }
}

// The counters llama.cpp's quantize_state_impl keeps while it walks the tensors.
struct State {
  QuantFtype ftype;
  RecipeModel model;
  bool tied_embeddings = true;  // until output.weight is seen
  int64_t n_attention_wv = 0;
  int64_t i_attention_wv = 0;
  int64_t i_ffn_down = 0;
};

// llama_tensor_get_type_impl for a tensor that may be quantised; `base` is the file type's.
Result<GgmlType> choose(State& s, const RecipeTensor& t, Category cat, GgmlType base) {
  const QuantFtype f = s.ftype;
  const bool eight_experts = s.model.n_expert == 8;
  GgmlType type = base;
  if (cat == Category::kOutput || (s.tied_embeddings && cat == Category::kTokenEmbd)) {
    if (t.dims[0] % ggml_type_info(base).block_size != 0) {
      type = GgmlType::Q8_0;
    } else if (base != GgmlType::Q8_0) {
      type = GgmlType::Q6_K;
    }
  } else if (cat == Category::kTokenEmbd) {
    // The base type: llama.cpp changes it only for IQ and ternary file types.
  } else if (cat == Category::kAttnV) {
    if ((f == QuantFtype::kQ4_K_M || f == QuantFtype::kQ5_K_M) &&
        use_more_bits(s.i_attention_wv, s.n_attention_wv))
      type = GgmlType::Q6_K;
    // (llama.cpp's LLM_TYPE_70B rule is for 80-layer llama models only.)
    if (eight_experts) type = GgmlType::Q8_0;
    ++s.i_attention_wv;
  } else if (cat == Category::kAttnK) {
    if (eight_experts) type = GgmlType::Q8_0;
  } else if (cat == Category::kFfnDown) {
    // llama.cpp's layer_info: the layer from the name for MoE models (experts need not be in
    // order), the running count of ffn_down tensors for dense ones.
    int64_t i_layer = s.i_ffn_down;
    if (std::max<int64_t>(1, s.model.n_expert) > 1) {
      auto layer = layer_of(t.name);
      if (!layer) return make_error(t.name, ": cannot tell its layer (expected a name blk.<N>.*)");
      i_layer = *layer;
    }
    if (i_layer < 0 || i_layer >= s.model.n_layer)
      return make_error(t.name, ": layer ", i_layer, " outside [0, ", s.model.n_layer, ")");
    if ((f == QuantFtype::kQ4_K_M || f == QuantFtype::kQ5_K_M) && use_more_bits(i_layer, s.model.n_layer))
      type = GgmlType::Q6_K;
    ++s.i_ffn_down;
  } else if (cat == Category::kAttnOutput) {
    if (eight_experts && f == QuantFtype::kQ4_K_M) type = GgmlType::Q5_K;
  }
  return type;
}

std::string dims_string(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

Result<QuantFtype> parse_quant_ftype(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& f : kFtypes) {
    if (lower == f.name) return f.ftype;
  }
  return make_error("unknown quantisation type '", name, "': expected f32, q8_0, q4_k_m, q5_k_m or q6_k");
}

const char* quant_ftype_name(QuantFtype ftype) { return info(ftype).name; }
GgmlType quant_ftype_base_type(QuantFtype ftype) { return info(ftype).base; }

bool use_more_bits(int64_t i_layer, int64_t n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

bool llama_tensor_order_less(std::string_view a, std::string_view b) {
  const int64_t la = layer_of(a).value_or(-1);
  const int64_t lb = layer_of(b).value_or(-1);
  if (la != lb) return la < lb;
  return a < b;
}

Status check_recipe_arch(std::string_view arch) {
  if (arch == "qwen3" || arch == "qwen3moe") return Status::success();
  return make_error("general.architecture '", arch,
                    "': the quantisation recipes cover qwen3 and qwen3moe only");
}

Result<std::vector<RecipeChoice>> plan_quant_types(QuantFtype ftype, const RecipeModel& model,
                                                   std::span<const RecipeTensor> tensors) {
  POPPER_RETURN_IF_ERROR(check_recipe_arch(model.arch));
  State s{ftype, model};
  for (const auto& t : tensors) {
    if (category_of(t.name) == Category::kAttnV) ++s.n_attention_wv;
    if (category_of(t.name) == Category::kOutput) s.tied_embeddings = false;
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return llama_tensor_order_less(tensors[a].name, tensors[b].name);
  });

  const GgmlType base = quant_ftype_base_type(ftype);
  std::vector<RecipeChoice> out(tensors.size(), RecipeChoice{GgmlType::F32, false});
  for (size_t i : order) {
    const RecipeTensor& t = tensors[i];
    const std::string where =
        std::string(t.name) + " (" + std::string(ggml_type_name(t.type)) + " " + dims_string(t.dims) + ")";
    if (!allows_quantization(t)) {
      // Kept as is: norms and the router. Popper's loader (engine/model/weights.cpp) reads them
      // as F32 only, and a copied F16/BF16 norm would give a file Popper cannot run.
      if (t.type != GgmlType::F32)
        return make_error(where,
                          ": kept unquantised by the recipe, but Popper runs this tensor in f32 only; "
                          "write it as F32 in the input");
      out[i] = {t.type, false};
      continue;
    }
    if (!is_float_type(t.type))
      return make_error(where, ": already quantised; popper quantize takes F32, F16 or BF16 weights");
    if (ftype == QuantFtype::kAllF32) {
      out[i] = {GgmlType::F32, t.type != GgmlType::F32};
      continue;
    }
    auto type = choose(s, t, category_of(t.name), base);
    if (!type.ok()) return type.error();
    const int64_t block = ggml_type_info(*type).block_size;
    if (t.dims[0] % block != 0)
      return make_error(where, ": row length ", t.dims[0], " is not a multiple of ", ggml_type_name(*type),
                        "'s block size ", block, " (llama-quantize would fall back to ",
                        llama_fallback_name(*type), ")");
    out[i] = {*type, *type != t.type};
  }
  return out;
}

}  // namespace popper
