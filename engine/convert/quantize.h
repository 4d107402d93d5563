// `popper quantize`: float (F32 / F16 / BF16) GGUF weights to a llama.cpp file type, the job of
// llama.cpp's llama-quantize, with the same result byte for byte where ggml's reference
// quantisers decide it (no imatrix: Q8_0, Q4_K, Q5_K and Q6_K all go through ggml's
// quantize_row_*_ref, which engine/quant reproduces bit for bit).
//
// What llama-quantize does, and so what this does:
//  - each tensor's type comes from the recipe (engine/quant/recipe.h); tensors it keeps are
//    copied byte for byte, the others are converted to f32 row by row and quantised;
//  - tensors are written in llama.cpp's order (non-layer tensors first, then by layer, by name
//    within a layer), data aligned to 32 bytes (or general.alignment);
//  - every metadata key is carried over in order, except split.* (dropped) and
//    general.quantization_version / general.file_type, which are set (2, the LLAMA_FTYPE) and
//    move to the end.
// The output appears atomically (temp file in OUT's directory, fsync, rename): an interrupted or
// failed run leaves no file under OUT.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/quant/recipe.h"

namespace popper {

// ggml's GGML_QNT_VERSION, written as general.quantization_version.
inline constexpr uint32_t kGgmlQuantizationVersion = 2;

struct QuantizeOptions {
  QuantFtype ftype = QuantFtype::kQ4_K_M;
  int n_threads = 0;                          // <= 0: one per hardware thread
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. by a signal handler) to stop; no file appears
};

struct QuantizedTensor {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType from;
  GgmlType to;
  bool quantised;  // false: copied unchanged
  uint64_t bytes_in;
  uint64_t bytes_out;
};

// The output's layout before any data is written: what `popper quantize --dry-run` prints.
struct QuantizePlan {
  std::string arch;
  std::vector<QuantizedTensor> tensors;  // in output order
  std::vector<GgufKeyValue> metadata;    // in output order
  uint64_t bytes_in = 0, bytes_out = 0;
  int64_t n_elements = 0;
};

// Plans the conversion of `in`. Errors name the key or tensor: no general.architecture, an arch
// the recipes do not cover, a missing {arch}.block_count, and the recipe's errors (a tensor
// already quantised, a row length that is not a multiple of the block size, ...).
Result<QuantizePlan> plan_quantize(const GgufFile& in, QuantFtype ftype);

struct QuantizeProgress {
  size_t tensors_done, tensors_total;
  uint64_t bytes_done, bytes_total;  // output bytes
};

// Quantises `in_path` into `out_path`. Errors name the file and tensor: the plan's errors, a
// non-finite weight ("blk.3.ffn_up.weight: element [17, 204] is nan"), cancellation, I/O
// failures. On error no file appears at out_path. Writing over the input itself is refused.
Result<QuantizePlan> quantize_model(const std::string& in_path, const std::string& out_path,
                                    const QuantizeOptions& options,
                                    const std::function<void(const QuantizeProgress&)>& progress = {});

}  // namespace popper
