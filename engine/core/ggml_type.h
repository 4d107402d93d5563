// The ggml tensor type ids that GGUF files carry, with the block geometry of each.
//
// Ids and sizes follow ggml's type_traits table (ggml.c). Every id ggml has assigned is known
// here, so `popper inspect` can size any tensor of any file; the quant layer implements kernels
// for the subset Popper computes with (see engine/quant/traits.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace popper {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // ggml's spelling: "f32", "q4_K", ...
  int64_t block_size;     // elements per block
  int64_t type_size;      // bytes per block
};

// Returns the info for a raw id read from a file, or nullopt for ids ggml never assigned
// (4, 5, 31-33, 36-38 were removed; > 39 unknown).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t raw_id);
const GgmlTypeInfo& ggml_type_info(GgmlType type);

inline std::string_view ggml_type_name(GgmlType type) { return ggml_type_info(type).name; }

// Bytes of one row of `n_elements` (must be a multiple of the block size; callers check).
inline int64_t ggml_row_size(GgmlType type, int64_t n_elements) {
  const auto& info = ggml_type_info(type);
  return n_elements / info.block_size * info.type_size;
}

// Looks a type up by ggml's name, case-insensitively ("Q4_K", "q4_k", "f32").
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

}  // namespace popper
