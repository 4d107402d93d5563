#include "engine/gguf/gguf_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <unordered_map>

namespace popper {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF is read by memcpy of little-endian fields; big-endian hosts are unsupported");

// The fewest bytes a key/value pair can take on the wire (key length, empty key, value type,
// a one-byte value) and a tensor info (name length, empty name, n_dims, one dim, type,
// offset). Counts in the header are bounded by what the remaining bytes could hold.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// The fewest bytes one array element of `type` takes.
uint64_t min_element_bytes(GgufValueType type) {
  if (type == GgufValueType::STRING) return 8;     // length only
  if (type == GgufValueType::ARRAY) return 4 + 8;  // elem type + count
  return gguf_scalar_size(type);
}

// Bounds-checked little-endian reads over [base, base + size). Every error names the file and
// the byte offset where the bad field starts; `what...` (formatted only on error) names the
// field.
class Cursor {
 public:
  Cursor(const std::string& name, const uint8_t* base, uint64_t size)
      : name_(name), base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  uint64_t size() const { return size_; }

  template <class... Args>
  Error error_at(uint64_t at, const Args&... args) const {
    return make_error(name_, ": offset ", at, ": ", args...);
  }

  template <class T, class... What>
  Status read(T& out, const What&... what) {
    if (left() < sizeof(T)) {
      return error_at(pos_, what..., ": truncated: need ", sizeof(T), " bytes, ", left(), " left (file size ",
                      size_, ")");
    }
    std::memcpy(&out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::success();
  }

  template <class... What>
  Status read_string(std::string& out, const What&... what) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    POPPER_RETURN_IF_ERROR(read(len, what..., " (string length)"));
    if (len > left()) {
      return error_at(at, what..., ": string length ", len, " runs past the end of the file (", left(),
                      " bytes left, file size ", size_, ")");
    }
    out.assign(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return Status::success();
  }

 private:
  const std::string& name_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Parses metadata values; tracks nesting depth and the total array elements decoded.
class ValueParser {
 public:
  explicit ValueParser(Cursor& c) : c_(c) {}

  // `ctx` names the key ("key 'general.name'").
  Status value(GgufValueType type, GgufValue& out, const std::string& ctx) {
    switch (type) {
      case GgufValueType::UINT8:
        return scalar<uint8_t>(out, ctx, GgufValue::u8);
      case GgufValueType::INT8:
        return scalar<int8_t>(out, ctx, GgufValue::i8);
      case GgufValueType::UINT16:
        return scalar<uint16_t>(out, ctx, GgufValue::u16);
      case GgufValueType::INT16:
        return scalar<int16_t>(out, ctx, GgufValue::i16);
      case GgufValueType::UINT32:
        return scalar<uint32_t>(out, ctx, GgufValue::u32);
      case GgufValueType::INT32:
        return scalar<int32_t>(out, ctx, GgufValue::i32);
      case GgufValueType::UINT64:
        return scalar<uint64_t>(out, ctx, GgufValue::u64);
      case GgufValueType::INT64:
        return scalar<int64_t>(out, ctx, GgufValue::i64);
      case GgufValueType::FLOAT32:
        return scalar<float>(out, ctx, GgufValue::f32);
      case GgufValueType::FLOAT64:
        return scalar<double>(out, ctx, GgufValue::f64);
      case GgufValueType::BOOL: {
        bool b = false;
        POPPER_RETURN_IF_ERROR(read_bool(b, ctx));
        out = GgufValue::boolean(b);
        return Status::success();
      }
      case GgufValueType::STRING: {
        std::string s;
        POPPER_RETURN_IF_ERROR(c_.read_string(s, ctx, " value"));
        out = GgufValue::string(std::move(s));
        return Status::success();
      }
      case GgufValueType::ARRAY: {
        GgufArray a;
        POPPER_RETURN_IF_ERROR(array(a, ctx, 1));
        out = GgufValue::array(std::move(a));
        return Status::success();
      }
    }
    return c_.error_at(c_.pos(), ctx, ": invalid value type");
  }

 private:
  template <class T, class Make>
  Status scalar(GgufValue& out, const std::string& ctx, Make make) {
    T v{};
    POPPER_RETURN_IF_ERROR(c_.read(v, ctx, " value"));
    out = make(v);
    return Status::success();
  }

  template <class... What>
  Status read_bool(bool& out, const What&... what) {
    const uint64_t at = c_.pos();
    uint8_t raw = 0;
    POPPER_RETURN_IF_ERROR(c_.read(raw, what..., " value"));
    if (raw > 1) return c_.error_at(at, what..., ": invalid bool value ", int{raw}, " (want 0 or 1)");
    out = raw != 0;
    return Status::success();
  }

  template <class T, class Vec>
  Status elements(Vec& v, uint64_t n, const std::string& ctx) {
    for (uint64_t i = 0; i < n; ++i) {
      T x{};
      POPPER_RETURN_IF_ERROR(c_.read(x, ctx, " element ", i));
      v.push_back(x);
    }
    return Status::success();
  }

  Status array(GgufArray& out, const std::string& ctx, int depth) {
    const uint64_t type_at = c_.pos();
    uint32_t raw_type = 0;
    POPPER_RETURN_IF_ERROR(c_.read(raw_type, ctx, " array element type"));
    if (!gguf_value_type_valid(raw_type)) {
      return c_.error_at(type_at, ctx, ": invalid array element type ", raw_type, " (valid types are 0..12)");
    }
    const auto type = static_cast<GgufValueType>(raw_type);
    if (type == GgufValueType::ARRAY && depth >= kGgufMaxArrayDepth) {
      return c_.error_at(type_at, ctx, ": arrays nested deeper than ", kGgufMaxArrayDepth, " levels");
    }
    const uint64_t count_at = c_.pos();
    uint64_t n = 0;
    POPPER_RETURN_IF_ERROR(c_.read(n, ctx, " array count"));
    if (n > c_.left() / min_element_bytes(type)) {
      return c_.error_at(count_at, ctx, ": array count ", n, " of ", gguf_value_type_name(type),
                         " cannot fit in the ", c_.left(), " bytes left in the file");
    }
    if (n > kGgufMaxArrayElements - elements_seen_) {
      return c_.error_at(count_at, ctx, ": array count ", n, " exceeds the limit of ", kGgufMaxArrayElements,
                         " metadata array elements per file");
    }
    elements_seen_ += n;
    out.elem_type = type;
    const size_t reserve = static_cast<size_t>(std::min<uint64_t>(n, kGgufReserveCap));
    switch (type) {
      case GgufValueType::UINT8:
        out.uints.reserve(reserve);
        return elements<uint8_t>(out.uints, n, ctx);
      case GgufValueType::UINT16:
        out.uints.reserve(reserve);
        return elements<uint16_t>(out.uints, n, ctx);
      case GgufValueType::UINT32:
        out.uints.reserve(reserve);
        return elements<uint32_t>(out.uints, n, ctx);
      case GgufValueType::UINT64:
        out.uints.reserve(reserve);
        return elements<uint64_t>(out.uints, n, ctx);
      case GgufValueType::INT8:
        out.ints.reserve(reserve);
        return elements<int8_t>(out.ints, n, ctx);
      case GgufValueType::INT16:
        out.ints.reserve(reserve);
        return elements<int16_t>(out.ints, n, ctx);
      case GgufValueType::INT32:
        out.ints.reserve(reserve);
        return elements<int32_t>(out.ints, n, ctx);
      case GgufValueType::INT64:
        out.ints.reserve(reserve);
        return elements<int64_t>(out.ints, n, ctx);
      case GgufValueType::FLOAT32:
        out.floats.reserve(reserve);
        return elements<float>(out.floats, n, ctx);
      case GgufValueType::FLOAT64:
        out.floats.reserve(reserve);
        return elements<double>(out.floats, n, ctx);
      case GgufValueType::BOOL:
        out.uints.reserve(reserve);
        for (uint64_t i = 0; i < n; ++i) {
          bool b = false;
          POPPER_RETURN_IF_ERROR(read_bool(b, ctx, " element ", i));
          out.uints.push_back(b ? 1 : 0);
        }
        return Status::success();
      case GgufValueType::STRING:
        out.strings.reserve(reserve);
        for (uint64_t i = 0; i < n; ++i) {
          out.strings.emplace_back();
          POPPER_RETURN_IF_ERROR(c_.read_string(out.strings.back(), ctx, " element ", i));
        }
        return Status::success();
      case GgufValueType::ARRAY:
        out.arrays.reserve(reserve);
        for (uint64_t i = 0; i < n; ++i) {
          out.arrays.emplace_back();
          POPPER_RETURN_IF_ERROR(array(out.arrays.back(), str_cat(ctx, " element ", i), depth + 1));
        }
        return Status::success();
    }
    return Status::success();
  }

  Cursor& c_;
  uint64_t elements_seen_ = 0;
};

// a * b into `out`; false on overflow of uint64.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }
bool add_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_add_overflow(a, b, &out); }

std::string quoted(std::string_view s) { return str_cat("'", s, "'"); }

}  // namespace

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // the reader and writer reject products that overflow
  return n;
}

std::string GgufTensorInfo::shape_string() const {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

Result<GgufTensorGeometry> gguf_tensor_geometry(GgmlType type, std::span<const int64_t> dims) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (dims.empty() || dims.size() > static_cast<size_t>(kGgufMaxDims)) {
    return make_error("n_dims ", dims.size(), " out of range (want 1..", kGgufMaxDims, ")");
  }
  uint64_t n_elements = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] <= 0) return make_error("ne[", i, "] = ", dims[i], " (want a positive dimension)");
    if (mul_overflows(n_elements, static_cast<uint64_t>(dims[i]), n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error("element count overflows int64 at ne[", i, "] (shape ", dims.size(), " dims)");
    }
  }
  if (dims[0] % info.block_size != 0) {
    return make_error("ne[0] = ", dims[0], " is not a multiple of ", info.name, "'s block size ",
                      info.block_size);
  }
  uint64_t n_bytes = 0;
  if (mul_overflows(static_cast<uint64_t>(dims[0] / info.block_size), static_cast<uint64_t>(info.type_size),
                    n_bytes) ||
      n_bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error("byte size overflows int64 at ne[0]");
  }
  for (size_t i = 1; i < dims.size(); ++i) {
    if (mul_overflows(n_bytes, static_cast<uint64_t>(dims[i]), n_bytes) ||
        n_bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error("byte size overflows int64 at ne[", i, "]");
    }
  }
  return GgufTensorGeometry{static_cast<int64_t>(n_elements), n_bytes};
}

Status gguf_check_alignment_value(const GgufValue& value) {
  if (value.type() != GgufValueType::UINT32) {
    return make_error("general.alignment: want u32, got ", gguf_value_type_name(value.type()));
  }
  const uint64_t a = value.raw_uint();
  if (a == 0 || (a & (a - 1)) != 0) {
    return make_error("general.alignment: ", a, " is not a nonzero power of two");
  }
  return Status::success();
}

GgufFile::~GgufFile() {
  if (mapped_ && base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return make_error(path, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path, ": not a regular file");
  }
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return make_error(path, ": mmap of ", file->size_, " bytes failed: ", std::strerror(err));
    }
    file->base_ = static_cast<const uint8_t*>(p);
    file->mapped_ = true;
  }
  ::close(fd);  // the mapping keeps the file alive
  return parse_mapped(std::move(file));
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::string name, std::span<const uint8_t> bytes) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->owned_.assign(bytes.begin(), bytes.end());
  file->base_ = file->owned_.data();
  file->size_ = file->owned_.size();
  return parse_mapped(std::move(file));
}

void GgufFile::release_pages(const void* p, uint64_t n_bytes) const {
  if (!mapped_ || p == nullptr || n_bytes == 0) return;
  const auto* begin = static_cast<const uint8_t*>(p);
  POPPER_CHECK(begin >= base_ && begin + n_bytes <= base_ + size_, "release_pages of bytes outside ", path_);
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (uintptr_t(begin) + page - 1) / page * page;  // whole pages only: the ends
  const uintptr_t last = (uintptr_t(begin) + n_bytes) / page * page;    // may hold other tensors' bytes
  if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& kv : metadata_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = std::lower_bound(tensor_index_.begin(), tensor_index_.end(), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  if (it == tensor_index_.end() || it->first != name) return nullptr;
  return &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& info) const {
  return base_ + data_offset_ + info.offset;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse_mapped(std::unique_ptr<GgufFile> file) {
  // Every allocation below is bounded by the file's size, but a huge corrupt file could still
  // ask for more memory than the machine has; that is bad input, not a crash.
  try {
    POPPER_RETURN_IF_ERROR(file->parse_header_and_tables());
  } catch (const std::bad_alloc&) {
    return make_error(file->path_, ": out of memory while reading the metadata (file size ", file->size_,
                      ")");
  }
  return file;
}

Status GgufFile::parse_header_and_tables() {
  Cursor c(path_, base_, size_);

  // Header.
  uint32_t magic = 0;
  POPPER_RETURN_IF_ERROR(c.read(magic, "header magic"));
  if (magic != kGgufMagic) {
    std::string shown;
    for (int i = 0; i < 4; ++i) {
      char ch = static_cast<char>((magic >> (8 * i)) & 0xFF);
      shown += (ch >= 0x20 && ch < 0x7F) ? ch : '.';
    }
    return c.error_at(0, "header magic: bad magic \"", shown, "\", want \"GGUF\" (not a GGUF file)");
  }
  POPPER_RETURN_IF_ERROR(c.read(version_, "header version"));
  if (version_ == 1) return c.error_at(4, "header version: GGUF v1 is not supported (want v2 or v3)");
  if (version_ != 2 && version_ != 3) {
    return c.error_at(4, "header version: unsupported GGUF version ", version_, " (want 2 or 3)");
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  POPPER_RETURN_IF_ERROR(c.read(n_tensors, "header n_tensors"));
  POPPER_RETURN_IF_ERROR(c.read(n_kv, "header n_kv"));
  if (n_tensors > c.left() / kMinTensorInfoBytes) {
    return c.error_at(8, "header n_tensors: ", n_tensors, " tensor infos cannot fit in the ", c.left(),
                      " bytes after the header");
  }
  if (n_kv > c.left() / kMinKvBytes) {
    return c.error_at(16, "header n_kv: ", n_kv, " key/value pairs cannot fit in the ", c.left(),
                      " bytes after the header");
  }

  // Metadata.
  ValueParser values(c);
  std::unordered_map<std::string, uint64_t> key_offsets;
  uint64_t alignment_at = 0;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t key_at = c.pos();
    GgufKeyValue kv;
    POPPER_RETURN_IF_ERROR(c.read_string(kv.key, "metadata key #", i));
    const std::string ctx = str_cat("key ", quoted(kv.key));
    auto [it, inserted] = key_offsets.emplace(kv.key, key_at);
    if (!inserted) return c.error_at(key_at, ctx, ": duplicate key (first at offset ", it->second, ")");
    const uint64_t type_at = c.pos();
    uint32_t raw_type = 0;
    POPPER_RETURN_IF_ERROR(c.read(raw_type, ctx, " value type"));
    if (!gguf_value_type_valid(raw_type)) {
      return c.error_at(type_at, ctx, ": invalid value type ", raw_type, " (valid types are 0..12)");
    }
    const uint64_t value_at = c.pos();
    POPPER_RETURN_IF_ERROR(values.value(static_cast<GgufValueType>(raw_type), kv.value, ctx));
    if (kv.key == "general.alignment") alignment_at = value_at;
    metadata_.push_back(std::move(kv));
  }
  if (const GgufValue* a = find("general.alignment")) {
    Status st = gguf_check_alignment_value(*a);
    if (!st.ok()) return c.error_at(alignment_at, "key ", st.message());
    alignment_ = static_cast<uint32_t>(a->raw_uint());
  }

  // Tensor infos.
  tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, kGgufReserveCap)));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.info_offset = c.pos();
    POPPER_RETURN_IF_ERROR(c.read_string(t.name, "tensor #", i, " name"));
    const std::string ctx = str_cat("tensor ", quoted(t.name));
    if (t.name.empty()) return c.error_at(t.info_offset, "tensor #", i, ": empty name");
    if (t.name.size() > kGgufMaxTensorName) {
      return c.error_at(t.info_offset, ctx, ": name is ", t.name.size(),
                        " bytes, longer than ggml's limit of ", kGgufMaxTensorName);
    }
    const uint64_t dims_at = c.pos();
    uint32_t n_dims = 0;
    POPPER_RETURN_IF_ERROR(c.read(n_dims, ctx, " n_dims"));
    if (n_dims < 1 || n_dims > static_cast<uint32_t>(kGgufMaxDims)) {
      return c.error_at(dims_at, ctx, ": n_dims ", n_dims, " out of range (want 1..", kGgufMaxDims, ")");
    }
    t.dims.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) POPPER_RETURN_IF_ERROR(c.read(t.dims[d], ctx, " ne[", d, "]"));
    const uint64_t type_at = c.pos();
    uint32_t raw_type = 0;
    POPPER_RETURN_IF_ERROR(c.read(raw_type, ctx, " type"));
    auto type_info = ggml_type_info(raw_type);
    if (!type_info) return c.error_at(type_at, ctx, ": unknown ggml type id ", raw_type);
    t.type = type_info->type;
    const uint64_t offset_at = c.pos();
    POPPER_RETURN_IF_ERROR(c.read(t.offset, ctx, " data offset"));
    auto geometry = gguf_tensor_geometry(t.type, t.dims);
    if (!geometry.ok()) {
      return c.error_at(dims_at, ctx, " (", type_info->name, " ", t.shape_string(),
                        "): ", geometry.message());
    }
    t.n_bytes = geometry->n_bytes;
    if (t.offset % alignment_ != 0) {
      return c.error_at(offset_at, ctx, ": data offset ", t.offset, " is not a multiple of the alignment ",
                        alignment_);
    }
    tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment after the tensor infos.
  const uint64_t infos_end = c.pos();
  data_offset_ = (infos_end + alignment_ - 1) / alignment_ * alignment_;  // infos_end <= size < 2^63
  // Writers pad the tensor infos to the alignment even with no tensors, so the data section
  // starts inside the file. Checked here, not only per tensor: a tensor-less file with a huge
  // general.alignment (1 GiB) would otherwise load, and rewriting it allocate the padding.
  if (data_offset_ > size_) {
    return c.error_at(alignment_at, "key general.alignment: ", alignment_, " puts the data section at ",
                      data_offset_, ", past the end of the file (", size_, " bytes)");
  }

  for (const auto& t : tensors_) {
    uint64_t start = 0;
    uint64_t end = 0;
    if (add_overflows(data_offset_, t.offset, start) || add_overflows(start, t.n_bytes, end) || end > size_) {
      return c.error_at(t.info_offset, "tensor ", quoted(t.name), ": data [offset ", t.offset, ", ",
                        t.n_bytes, " bytes] ends past the end of the file (data section at ", data_offset_,
                        ", file size ", size_, ")");
    }
  }

  // Names are unique.
  tensor_index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_.emplace_back(tensors_[i].name, i);
  std::sort(tensor_index_.begin(), tensor_index_.end());
  for (size_t i = 1; i < tensor_index_.size(); ++i) {
    if (tensor_index_[i].first == tensor_index_[i - 1].first) {
      const auto& a = tensors_[std::min(tensor_index_[i].second, tensor_index_[i - 1].second)];
      const auto& b = tensors_[std::max(tensor_index_[i].second, tensor_index_[i - 1].second)];
      return c.error_at(b.info_offset, "tensor ", quoted(b.name), ": duplicate tensor name (first at offset ",
                        a.info_offset, ")");
    }
  }

  // Data ranges do not overlap.
  std::vector<size_t> by_offset(tensors_.size());
  for (size_t i = 0; i < by_offset.size(); ++i) by_offset[i] = i;
  std::sort(by_offset.begin(), by_offset.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto& prev = tensors_[by_offset[i - 1]];
    const auto& cur = tensors_[by_offset[i]];
    if (prev.offset + prev.n_bytes > cur.offset) {  // both within the file: no overflow
      return c.error_at(cur.info_offset, "tensor ", quoted(cur.name), ": data [offset ", cur.offset, ", ",
                        cur.n_bytes, " bytes] overlaps tensor ", quoted(prev.name), " [offset ", prev.offset,
                        ", ", prev.n_bytes, " bytes]");
    }
  }
  return Status::success();
}

}  // namespace popper
