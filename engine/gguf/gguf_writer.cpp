#include "engine/gguf/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "engine/core/atomic_file.h"
#include "engine/gguf/gguf_reader.h"

namespace popper {
namespace {

template <class T>
void put(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // the host is little-endian (asserted in gguf_reader.cpp)
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_array(std::string& out, const GgufArray& a) {
  put<uint32_t>(out, static_cast<uint32_t>(a.elem_type));
  const size_t n = a.size();
  put<uint64_t>(out, n);
  for (size_t i = 0; i < n; ++i) {
    switch (a.elem_type) {
      case GgufValueType::UINT8:
        put<uint8_t>(out, static_cast<uint8_t>(a.uints[i]));
        break;
      case GgufValueType::UINT16:
        put<uint16_t>(out, static_cast<uint16_t>(a.uints[i]));
        break;
      case GgufValueType::UINT32:
        put<uint32_t>(out, static_cast<uint32_t>(a.uints[i]));
        break;
      case GgufValueType::UINT64:
        put<uint64_t>(out, a.uints[i]);
        break;
      case GgufValueType::BOOL:
        put<uint8_t>(out, a.uints[i] != 0 ? 1 : 0);
        break;
      case GgufValueType::INT8:
        put<int8_t>(out, static_cast<int8_t>(a.ints[i]));
        break;
      case GgufValueType::INT16:
        put<int16_t>(out, static_cast<int16_t>(a.ints[i]));
        break;
      case GgufValueType::INT32:
        put<int32_t>(out, static_cast<int32_t>(a.ints[i]));
        break;
      case GgufValueType::INT64:
        put<int64_t>(out, a.ints[i]);
        break;
      case GgufValueType::FLOAT32:
        put<float>(out, static_cast<float>(a.floats[i]));
        break;
      case GgufValueType::FLOAT64:
        put<double>(out, a.floats[i]);
        break;
      case GgufValueType::STRING:
        put_string(out, a.strings[i]);
        break;
      case GgufValueType::ARRAY:
        put_array(out, a.arrays[i]);
        break;
    }
  }
}

void put_value(std::string& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::UINT8:
      put<uint8_t>(out, static_cast<uint8_t>(v.raw_uint()));
      break;
    case GgufValueType::UINT16:
      put<uint16_t>(out, static_cast<uint16_t>(v.raw_uint()));
      break;
    case GgufValueType::UINT32:
      put<uint32_t>(out, static_cast<uint32_t>(v.raw_uint()));
      break;
    case GgufValueType::UINT64:
      put<uint64_t>(out, v.raw_uint());
      break;
    case GgufValueType::BOOL:
      put<uint8_t>(out, v.raw_uint() != 0 ? 1 : 0);
      break;
    case GgufValueType::INT8:
      put<int8_t>(out, static_cast<int8_t>(v.raw_int()));
      break;
    case GgufValueType::INT16:
      put<int16_t>(out, static_cast<int16_t>(v.raw_int()));
      break;
    case GgufValueType::INT32:
      put<int32_t>(out, static_cast<int32_t>(v.raw_int()));
      break;
    case GgufValueType::INT64:
      put<int64_t>(out, v.raw_int());
      break;
    // Floats keep their exact bits (GgufValue::f32/f64 store them in raw_uint).
    case GgufValueType::FLOAT32:
      put<uint32_t>(out, static_cast<uint32_t>(v.raw_uint()));
      break;
    case GgufValueType::FLOAT64:
      put<uint64_t>(out, v.raw_uint());
      break;
    case GgufValueType::STRING:
      put_string(out, *v.as_string());
      break;
    case GgufValueType::ARRAY:
      put_array(out, *v.as_array());
      break;
  }
}

// Arrays must be readable back: valid element types, nesting within the reader's limit.
Status check_array(const GgufArray& a, int depth) {
  if (!gguf_value_type_valid(static_cast<uint32_t>(a.elem_type))) {
    return make_error("invalid array element type ", static_cast<uint32_t>(a.elem_type));
  }
  if (a.elem_type != GgufValueType::ARRAY) return Status::success();
  if (depth >= kGgufMaxArrayDepth)
    return make_error("arrays nested deeper than ", kGgufMaxArrayDepth, " levels");
  for (const auto& inner : a.arrays) POPPER_RETURN_IF_ERROR(check_array(inner, depth + 1));
  return Status::success();
}

uint64_t pad_to(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

struct GgufWriter::Plan {
  std::string head;  // header, metadata, tensor infos, padding up to the data section
  std::vector<uint64_t> n_bytes;
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_bytes = 0;  // sum of padded tensor sizes
};

void GgufWriter::add_kv(std::string key, GgufValue value) {
  metadata_.push_back(GgufKeyValue{std::move(key), std::move(value)});
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, TensorFiller fill) {
  tensors_.push_back(PendingTensor{std::move(name), type, std::move(dims), std::move(fill)});
}

Result<GgufWriter::Plan> GgufWriter::plan() const {
  Plan plan;
  std::unordered_set<std::string_view> keys;
  for (const auto& kv : metadata_) {
    if (!keys.insert(kv.key).second) return make_error("key '", kv.key, "': duplicate key");
    if (kv.key == "general.alignment") {
      POPPER_RETURN_IF_ERROR(gguf_check_alignment_value(kv.value));
      plan.alignment = kv.value.raw_uint();
    }
    if (const GgufArray* a = kv.value.as_array()) {
      Status st = check_array(*a, 1);
      if (!st.ok()) return make_error("key '", kv.key, "': ", st.message());
    }
  }

  std::string& h = plan.head;
  put<uint32_t>(h, kGgufMagic);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, metadata_.size());
  for (const auto& kv : metadata_) {
    put_string(h, kv.key);
    put<uint32_t>(h, static_cast<uint32_t>(kv.value.type()));
    put_value(h, kv.value);
  }

  std::unordered_set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    if (t.name.empty()) return make_error("tensor #", plan.n_bytes.size(), ": empty name");
    if (t.name.size() > kGgufMaxTensorName) {
      return make_error("tensor '", t.name, "': name is ", t.name.size(),
                        " bytes, longer than ggml's limit of ", kGgufMaxTensorName);
    }
    if (!names.insert(t.name).second) return make_error("tensor '", t.name, "': duplicate tensor name");
    auto geometry = gguf_tensor_geometry(t.type, t.dims);
    if (!geometry.ok()) {
      return make_error("tensor '", t.name, "' (", ggml_type_name(t.type), "): ", geometry.message());
    }
    put_string(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<int64_t>(h, d);
    put<uint32_t>(h, static_cast<uint32_t>(t.type));
    put<uint64_t>(h, offset);
    plan.n_bytes.push_back(geometry->n_bytes);
    const uint64_t padded = pad_to(geometry->n_bytes, plan.alignment);  // n_bytes <= INT64_MAX
    if (__builtin_add_overflow(offset, padded, &offset)) {
      return make_error("tensor '", t.name, "': data section exceeds 2^64 bytes");
    }
  }
  plan.data_bytes = offset;
  h.resize(pad_to(h.size(), plan.alignment), '\0');
  return plan;
}

Status GgufWriter::emit(const Plan& plan, const ByteSink& sink,
                        const std::function<void(size_t, size_t, uint64_t, uint64_t)>& progress) const {
  POPPER_RETURN_IF_ERROR(sink(reinterpret_cast<const uint8_t*>(plan.head.data()), plan.head.size()));
  std::vector<uint8_t> buf;  // reused across tensors: grows to the largest tensor only
  const std::vector<uint8_t> zeros(plan.alignment, 0);
  uint64_t done = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    const uint64_t n = plan.n_bytes[i];
    if (n > buf.max_size()) return make_error("tensor '", t.name, "': ", n, " bytes do not fit in memory");
    buf.resize(static_cast<size_t>(n));
    // Zeroed first, so a filler that leaves bytes untouched still gives reproducible files.
    std::fill(buf.begin(), buf.end(), 0);
    if (t.fill) {
      Status st = t.fill(std::span<uint8_t>(buf.data(), buf.size()));
      if (!st.ok()) return make_error("tensor '", t.name, "': ", st.message());
    }
    POPPER_RETURN_IF_ERROR(sink(buf.data(), buf.size()));
    const uint64_t pad = pad_to(n, plan.alignment) - n;
    POPPER_RETURN_IF_ERROR(sink(zeros.data(), static_cast<size_t>(pad)));
    done += n + pad;
    if (progress) progress(i + 1, tensors_.size(), done, plan.data_bytes);
  }
  return Status::success();
}

Result<std::vector<uint8_t>> GgufWriter::write_to_bytes() const {
  auto plan = this->plan();
  if (!plan.ok()) return make_error("gguf writer: ", plan.message());
  std::vector<uint8_t> out;
  out.reserve(plan->head.size() + plan->data_bytes);
  auto sink = [&out](const uint8_t* data, size_t n) {
    out.insert(out.end(), data, data + n);
    return Status::success();
  };
  Status st = emit(*plan, sink, {});
  if (!st.ok()) return make_error("gguf writer: ", st.message());
  return out;
}

// Streamed through engine/core's AtomicFileWriter: the file's bytes never sit in memory all at
// once, and a failed write leaves nothing at `path`.
Status GgufWriter::write(const std::string& path,
                         const std::function<void(size_t, size_t, uint64_t, uint64_t)>& progress) const {
  auto plan = this->plan();
  if (!plan.ok()) return make_error(path, ": ", plan.message());
  auto file = AtomicFileWriter::open(path);
  if (!file.ok()) return file.error();
  AtomicFileWriter& out = **file;
  Status st = emit(
      *plan, [&out](const uint8_t* data, size_t n) { return out.append(data, n); }, progress);
  if (st.ok()) st = out.commit();
  if (!st.ok()) {
    if (st.message().starts_with(path)) return st;
    return make_error(path, ": ", st.message());
  }
  return Status::success();
}

}  // namespace popper
