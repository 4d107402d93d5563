// Helpers shared by the GGUF falsifiers: a hand byte assembler (so layout checks never rely on
// the writer under test) and locators for fields inside a written image.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace popper::gguf_test {

// Appends little-endian fields by hand, exactly as the GGUF spec lays them out.
class Bytes {
 public:
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& i32(int32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& i64(int64_t v) { return raw(&v, 8); }
  Bytes& f32(float v) { return raw(&v, 4); }
  // GGUF string: u64 length, then the bytes (no terminator).
  Bytes& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes& zeros(size_t n) {
    bytes_.insert(bytes_.end(), n, 0);
    return *this;
  }
  Bytes& pad_to(size_t alignment) { return zeros((alignment - bytes_.size() % alignment) % alignment); }
  Bytes& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Byte offset of the first occurrence of `needle` in `image` (fails the test when absent).
inline size_t find_bytes(const std::vector<uint8_t>& image, std::string_view needle) {
  auto it = std::search(image.begin(), image.end(), needle.begin(), needle.end());
  EXPECT_NE(it, image.end()) << "'" << needle << "' not found in the image";
  return static_cast<size_t>(it - image.begin());
}

// Offset of the u64 length field of the GGUF string `s` (key or tensor name) in `image`.
inline size_t string_field_at(const std::vector<uint8_t>& image, std::string_view s) {
  std::string encoded(8, '\0');
  const uint64_t len = s.size();
  std::memcpy(encoded.data(), &len, 8);
  encoded += s;
  return find_bytes(image, encoded);
}

// Where the fields of a tensor info record sit in a written image.
struct TensorInfoFields {
  size_t name;    // u64 name length
  size_t n_dims;  // u32
  size_t ne;      // ne[0] (i64), ne[1] follows at +8, ...
  size_t type;    // u32
  size_t offset;  // u64
};

inline TensorInfoFields tensor_info_fields(const std::vector<uint8_t>& image, std::string_view name) {
  TensorInfoFields f{};
  f.name = string_field_at(image, name);
  f.n_dims = f.name + 8 + name.size();
  uint32_t n_dims = 0;
  std::memcpy(&n_dims, image.data() + f.n_dims, 4);
  f.ne = f.n_dims + 4;
  f.type = f.ne + 8 * n_dims;
  f.offset = f.type + 4;
  return f;
}

template <class T>
void poke(std::vector<uint8_t>& image, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), image.size());
  std::memcpy(image.data() + at, &v, sizeof(T));
}

template <class T>
T peek(const std::vector<uint8_t>& image, size_t at) {
  T v{};
  std::memcpy(&v, image.data() + at, sizeof(T));
  return v;
}

}  // namespace popper::gguf_test
