// GGUF v3 writer producing files llama.cpp loads.
//
// Keys are written in the order added. Tensor data offsets are the running sum of each
// tensor's size padded to the alignment (general.alignment when set, else 32), exactly as
// ggml's gguf writer lays them out. Tensor bytes are streamed through a callback, so a 17 GiB
// model never has to sit in memory. The file appears atomically (temp file, fsync, rename).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"
#include "engine/gguf/gguf_value.h"

namespace popper {

class GgufWriter {
 public:
  // Fills `out` (already sized to the tensor's n_bytes and zeroed) with the tensor's data. An
  // error aborts the write and no file appears. A null filler leaves the tensor all zeros.
  using TensorFiller = std::function<Status(std::span<uint8_t> out)>;

  void add_kv(std::string key, GgufValue value);
  // dims as in GgufTensorInfo (dims[0] contiguous). Errors (duplicate name, dims not a multiple
  // of the type's block size, too many dims) are reported by write().
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, TensorFiller fill);

  // Writes the whole file. `progress` (optional) is called after each tensor with
  // (tensors done, total, bytes done, total bytes).
  Status write(const std::string& path,
               const std::function<void(size_t, size_t, uint64_t, uint64_t)>& progress = {}) const;

  // The same bytes write() would produce, in memory (tests, fixtures, small files).
  Result<std::vector<uint8_t>> write_to_bytes() const;

  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    TensorFiller fill;
  };
  struct Plan;  // validated layout: header bytes, tensor sizes (gguf_writer.cpp)
  using ByteSink = std::function<Status(const uint8_t* data, size_t n)>;  // memory or a temp file
  Result<Plan> plan() const;
  Status emit(const Plan& plan, const ByteSink& sink,
              const std::function<void(size_t, size_t, uint64_t, uint64_t)>& progress) const;

  std::vector<GgufKeyValue> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace popper
