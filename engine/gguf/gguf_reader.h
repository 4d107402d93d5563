// GGUF v3 reader (v2 accepted too): maps the file read-only and validates every byte of the
// header, metadata and tensor table before handing anything out.
//
// Validation is strict and total: bad magic, unsupported version, truncation anywhere, absurd
// counts or string lengths, unknown value or ggml types, dims that overflow, tensor data out of
// bounds, misaligned or overlapping, duplicate keys or tensor names. Each error names the file,
// the key or tensor, and the byte offset: "m.gguf: offset 1234: tensor 'blk.0.attn_q.weight':
// data [off 0, 9437184 bytes] ends past the file (size 4096)". No input can crash the reader or
// make it read out of bounds (the corruption falsifiers run it under ASan+UBSan).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/core/result.h"
#include "engine/gguf/gguf_value.h"

namespace popper {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
// ggml's GGML_MAX_NAME is 64 including the terminating NUL; llama.cpp rejects longer names.
inline constexpr size_t kGgufMaxTensorName = 63;
// The spec allows arrays of arrays; nothing real nests them, and unbounded nesting would let a
// small file exhaust the stack.
inline constexpr int kGgufMaxArrayDepth = 16;
// Total metadata array elements one file may hold: real tokenizers hold under 300k per array,
// and the bound keeps a corrupt count from making the reader allocate far beyond the file.
inline constexpr uint64_t kGgufMaxArrayElements = uint64_t{1} << 24;
// Vectors sized from counts in the file reserve at most this many entries up front.
inline constexpr uint64_t kGgufReserveCap = uint64_t{1} << 16;

struct GgufTensorGeometry {
  int64_t n_elements;
  uint64_t n_bytes;
};
// Element count and byte size of a tensor of `type` and `dims` (ne[0] first), with every
// product checked: the error says which dim is non-positive, which product overflows int64, or
// that ne[0] is not a multiple of the type's block size. Shared by the reader and the writer.
Result<GgufTensorGeometry> gguf_tensor_geometry(GgmlType type, std::span<const int64_t> dims);
// general.alignment must be a u32, nonzero power of two; the error starts "general.alignment: ".
Status gguf_check_alignment_value(const GgufValue& value);

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;  // ne[0] first: dims[0] is the contiguous (row) length
  uint64_t offset;            // relative to the start of the data section
  uint64_t n_bytes;           // computed from type and dims
  uint64_t info_offset;       // byte offset of this tensor's info record in the file (for errors)

  int64_t n_elements() const;
  // "[2048, 768, 128]"
  std::string shape_string() const;
};

class GgufFile {
 public:
  // Maps and validates `path`. The error message starts with the path.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Validates an in-memory image (the corruption falsifiers use this; `name` stands in for the
  // path in messages). The bytes are copied.
  static Result<std::unique_ptr<GgufFile>> parse(std::string name, std::span<const uint8_t> bytes);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of tensor data

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  // Pointer to a tensor's bytes inside the mapping (valid while this object lives).
  const uint8_t* tensor_data(const GgufTensorInfo& info) const;
  // Hands the pages wholly inside [p, p + n_bytes) (a range of this file's bytes) back to the
  // kernel, when nothing needs them resident any more: a backend copied the tensors there
  // (repacked, uploaded). The bytes stay valid: the mapping is read-only and private, so a later
  // read brings the pages back from the file, at the cost of reading them again. A no-op for an
  // image held in memory (parse) and on systems without madvise.
  void release_pages(const void* p, uint64_t n_bytes) const;

 private:
  GgufFile() = default;
  static Result<std::unique_ptr<GgufFile>> parse_mapped(std::unique_ptr<GgufFile> file);
  Status parse_header_and_tables();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;  // base_ came from mmap (else from owned_)
  std::vector<uint8_t> owned_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::vector<std::pair<std::string_view, size_t>> tensor_index_;  // sorted by name
};

}  // namespace popper
