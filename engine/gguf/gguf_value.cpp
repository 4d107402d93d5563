#include "engine/gguf/gguf_value.h"

#include <bit>
#include <charconv>
#include <cstdio>
#include <limits>

#include "engine/core/result.h"

namespace popper {
namespace {

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}

bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}

// Shortest text that reads back to the same double ("0.1", "1e+06", "nan").
std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

std::string format_float(double v, GgufValueType t) {
  if (t == GgufValueType::FLOAT32) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v));
    if (ec != std::errc()) return "?";
    return std::string(buf, end);
  }
  return format_double(v);
}

// A string in double quotes with control characters, quotes and backslashes escaped; bytes
// past `max_chars` are replaced by "...". UTF-8 passes through untouched (a cut never splits a
// multi-byte sequence: we back up to a lead byte).
std::string quote(const std::string& s, size_t max_chars) {
  std::string out = "\"";
  size_t limit = s.size();
  bool clipped = false;
  if (limit > max_chars) {
    limit = max_chars;
    while (limit > 0 && (static_cast<unsigned char>(s[limit]) & 0xC0) == 0x80) --limit;
    clipped = true;
  }
  for (size_t i = 0; i < limit; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += clipped ? "\"..." : "\"";
  return out;
}

// Element `i` of `a` as text; `budget` bounds the length of a string element.
std::string array_item(const GgufArray& a, size_t i, size_t budget) {
  switch (a.elem_type) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64:
      return std::to_string(a.uints[i]);
    case GgufValueType::BOOL:
      return a.uints[i] ? "true" : "false";
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64:
      return std::to_string(a.ints[i]);
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64:
      return format_float(a.floats[i], a.elem_type);
    case GgufValueType::STRING:
      return quote(a.strings[i], budget);
    case GgufValueType::ARRAY:
      return GgufValue::array(a.arrays[i]).summary(budget);
  }
  return "?";
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8:
      return "u8";
    case GgufValueType::INT8:
      return "i8";
    case GgufValueType::UINT16:
      return "u16";
    case GgufValueType::INT16:
      return "i16";
    case GgufValueType::UINT32:
      return "u32";
    case GgufValueType::INT32:
      return "i32";
    case GgufValueType::FLOAT32:
      return "f32";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "string";
    case GgufValueType::ARRAY:
      return "array";
    case GgufValueType::UINT64:
      return "u64";
    case GgufValueType::INT64:
      return "i64";
    case GgufValueType::FLOAT64:
      return "f64";
  }
  return "invalid";
}

bool gguf_value_type_valid(uint32_t raw) { return raw <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

size_t gguf_scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY:
      return 0;
  }
  return 0;
}

// A FLOAT32 keeps its exact bit pattern in uint_ (NaN payloads included: widening a signalling
// NaN to double would quiet it), and its widened value in float_ for readers.
GgufValue GgufValue::f32(float v) {
  GgufValue g;
  g.type_ = GgufValueType::FLOAT32;
  g.float_ = v;
  g.uint_ = std::bit_cast<uint32_t>(v);
  return g;
}

GgufValue GgufValue::f64(double v) {
  GgufValue g;
  g.type_ = GgufValueType::FLOAT64;
  g.float_ = v;
  g.uint_ = std::bit_cast<uint64_t>(v);
  return g;
}

GgufValue GgufValue::boolean(bool v) {
  GgufValue g;
  g.type_ = GgufValueType::BOOL;
  g.uint_ = v ? 1 : 0;
  return g;
}

GgufValue GgufValue::string(std::string v) {
  GgufValue g;
  g.type_ = GgufValueType::STRING;
  g.string_ = std::move(v);
  return g;
}

GgufValue GgufValue::array(GgufArray a) {
  GgufValue g;
  g.type_ = GgufValueType::ARRAY;
  g.array_ = std::make_shared<const GgufArray>(std::move(a));
  return g;
}

bool GgufValue::is_integer() const { return is_unsigned_type(type_) || is_signed_type(type_); }

std::optional<uint64_t> GgufValue::as_u64() const {
  if (is_unsigned_type(type_)) return uint_;
  if (is_signed_type(type_) && int_ >= 0) return static_cast<uint64_t>(int_);
  return std::nullopt;
}

std::optional<int64_t> GgufValue::as_i64() const {
  if (is_signed_type(type_)) return int_;
  if (is_unsigned_type(type_) && uint_ <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return static_cast<int64_t>(uint_);
  return std::nullopt;
}

std::optional<double> GgufValue::as_f64() const {
  if (is_float()) return float_;
  if (is_unsigned_type(type_)) return static_cast<double>(uint_);
  if (is_signed_type(type_)) return static_cast<double>(int_);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (type_ == GgufValueType::BOOL) return uint_ != 0;
  return std::nullopt;
}

const std::string* GgufValue::as_string() const {
  return type_ == GgufValueType::STRING ? &string_ : nullptr;
}

const GgufArray* GgufValue::as_array() const {
  return type_ == GgufValueType::ARRAY ? array_.get() : nullptr;
}

bool GgufValue::operator==(const GgufValue& other) const {
  if (type_ != other.type_) return false;
  if (is_unsigned_type(type_) || type_ == GgufValueType::BOOL) return uint_ == other.uint_;
  if (is_signed_type(type_)) return int_ == other.int_;
  // Floats compare by bit pattern, so a NaN equals itself and -0 differs from +0: a round
  // trip must keep the exact bits.
  if (is_float()) return uint_ == other.uint_;
  if (type_ == GgufValueType::STRING) return string_ == other.string_;
  if (array_ == other.array_) return true;
  if (!array_ || !other.array_) return false;
  return *array_ == *other.array_;
}

std::string GgufValue::summary(size_t max_chars) const {
  if (is_unsigned_type(type_)) return std::to_string(uint_);
  if (is_signed_type(type_)) return std::to_string(int_);
  switch (type_) {
    case GgufValueType::BOOL:
      return uint_ ? "true" : "false";
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64:
      return format_float(float_, type_);
    case GgufValueType::STRING:
      return quote(string_, max_chars);
    case GgufValueType::ARRAY:
      break;
    default:
      return "?";
  }
  const GgufArray& a = *array_;
  std::string out = str_cat("[", gguf_value_type_name(a.elem_type), " x ", a.size());
  const size_t n = a.size();
  for (size_t i = 0; i < n; ++i) {
    std::string item = array_item(a, i, max_chars);
    // Always show the first item (clipped), then only what fits.
    if (i > 0 && out.size() + item.size() + 2 > max_chars) {
      out += ", ...";
      break;
    }
    out += i == 0 ? ": " : ", ";
    out += item;
  }
  out += "]";
  return out;
}

size_t GgufArray::size() const {
  switch (elem_type) {
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64:
      return ints.size();
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64:
      return floats.size();
    case GgufValueType::STRING:
      return strings.size();
    case GgufValueType::ARRAY:
      return arrays.size();
    default:
      return uints.size();  // unsigned ints and BOOL
  }
}

bool GgufArray::operator==(const GgufArray& other) const {
  if (elem_type != other.elem_type || uints != other.uints || ints != other.ints ||
      strings != other.strings || arrays != other.arrays || floats.size() != other.floats.size()) {
    return false;
  }
  for (size_t i = 0; i < floats.size(); ++i) {
    if (std::bit_cast<uint64_t>(floats[i]) != std::bit_cast<uint64_t>(other.floats[i])) return false;
  }
  return true;
}

GgufArray GgufArray::of_strings(std::vector<std::string> v) {
  GgufArray a;
  a.elem_type = GgufValueType::STRING;
  a.strings = std::move(v);
  return a;
}

GgufArray GgufArray::of_i32(std::vector<int64_t> v) {
  GgufArray a;
  a.elem_type = GgufValueType::INT32;
  a.ints = std::move(v);
  return a;
}

GgufArray GgufArray::of_u32(std::vector<uint64_t> v) {
  GgufArray a;
  a.elem_type = GgufValueType::UINT32;
  a.uints = std::move(v);
  return a;
}

GgufArray GgufArray::of_f32(std::vector<double> v) {
  GgufArray a;
  a.elem_type = GgufValueType::FLOAT32;
  a.floats = std::move(v);
  return a;
}

}  // namespace popper
