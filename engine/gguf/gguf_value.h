// GGUF metadata values: the 13 GGUF value types, with nested arrays.
//
// Scalars keep their exact GGUF type (a u32 stays a u32 on a round trip). Arrays store their
// elements in one typed vector (not a vector of variants), because tokenizer arrays hold
// ~150k strings and ids.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace popper {

// Wire ids from the GGUF spec (gguf_type in ggml's gguf.h).
enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType type);  // "u32", "string", "array", ...
bool gguf_value_type_valid(uint32_t raw);
// Bytes of one scalar on the wire; 0 for STRING and ARRAY.
size_t gguf_scalar_size(GgufValueType type);

struct GgufArray;

class GgufValue {
 public:
  GgufValue() = default;
  // Factories keep the exact wire type.
  static GgufValue u8(uint8_t v) { return from_uint(GgufValueType::UINT8, v); }
  static GgufValue i8(int8_t v) { return from_int(GgufValueType::INT8, v); }
  static GgufValue u16(uint16_t v) { return from_uint(GgufValueType::UINT16, v); }
  static GgufValue i16(int16_t v) { return from_int(GgufValueType::INT16, v); }
  static GgufValue u32(uint32_t v) { return from_uint(GgufValueType::UINT32, v); }
  static GgufValue i32(int32_t v) { return from_int(GgufValueType::INT32, v); }
  static GgufValue u64(uint64_t v) { return from_uint(GgufValueType::UINT64, v); }
  static GgufValue i64(int64_t v) { return from_int(GgufValueType::INT64, v); }
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue array(GgufArray a);

  GgufValueType type() const { return type_; }
  bool is_integer() const;
  bool is_float() const { return type_ == GgufValueType::FLOAT32 || type_ == GgufValueType::FLOAT64; }

  // Lenient typed reads: any integer type converts when the value fits; floats accept any
  // numeric type. nullopt when the type does not fit or the value is out of range.
  std::optional<uint64_t> as_u64() const;
  std::optional<int64_t> as_i64() const;
  std::optional<double> as_f64() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;  // nullptr unless STRING
  const GgufArray* as_array() const;     // nullptr unless ARRAY

  // Raw storage (by type): unsigned types in uint_, signed in int_, floats in float_ (a
  // FLOAT32 is stored widened; it narrows back exactly on write).
  uint64_t raw_uint() const { return uint_; }
  int64_t raw_int() const { return int_; }
  double raw_float() const { return float_; }

  bool operator==(const GgufValue& other) const;

  // Short human form for `popper inspect`: scalars in full, strings quoted and clipped,
  // arrays as "[string x 151936: "!", "\"", ...]".
  std::string summary(size_t max_chars = 80) const;

 private:
  static GgufValue from_uint(GgufValueType t, uint64_t v) {
    GgufValue g;
    g.type_ = t;
    g.uint_ = v;
    return g;
  }
  static GgufValue from_int(GgufValueType t, int64_t v) {
    GgufValue g;
    g.type_ = t;
    g.int_ = v;
    return g;
  }

  GgufValueType type_ = GgufValueType::UINT8;
  uint64_t uint_ = 0;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string string_;
  std::shared_ptr<const GgufArray> array_;
};

// A homogeneous array. Exactly one of the vectors is used, chosen by elem_type:
// unsigned ints -> uints, signed ints -> ints, FLOAT32/64 -> floats, BOOL -> uints (0/1),
// STRING -> strings, ARRAY -> arrays (nested; GGUF allows arrays of arrays).
struct GgufArray {
  GgufValueType elem_type = GgufValueType::UINT8;
  std::vector<uint64_t> uints;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufArray> arrays;

  size_t size() const;
  // Floats compare by bit pattern, as in GgufValue: a NaN equals itself, -0 differs from +0.
  bool operator==(const GgufArray& other) const;

  static GgufArray of_strings(std::vector<std::string> v);
  static GgufArray of_i32(std::vector<int64_t> v);
  static GgufArray of_u32(std::vector<uint64_t> v);
  static GgufArray of_f32(std::vector<double> v);
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

}  // namespace popper
