// Fuzz target: the GGUF reader and writer (engine/gguf).
//
// Properties, for every input: the reader returns an error that names the file and a byte
// offset, or a file whose tensors lie inside it; an accepted file written back parses again
// with the same metadata (keys in order, values bit for bit) and the same tensors (name, type,
// shape, bytes): read(write(read(x))) == read(x). A GGUF is small binary records, so the
// dictionary (dict/gguf.dict) holds the magic and the common keys.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"
#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {
namespace {

GgufWriter rewrite(const GgufFile& file) {
  GgufWriter w;
  for (const auto& kv : file.metadata()) w.add_kv(kv.key, kv.value);
  for (const auto& t : file.tensors()) {
    const uint8_t* src = file.tensor_data(t);
    w.add_tensor(t.name, t.type, t.dims, [src](std::span<uint8_t> out) {
      std::memcpy(out.data(), src, out.size());
      return Status::success();
    });
  }
  return w;
}

void gguf_one_input(Bytes data) {
  auto file = GgufFile::parse("fuzz.gguf", data);
  if (!file.ok()) {
    fuzz_require(file.message().rfind("fuzz.gguf: offset ", 0) == 0,
                 "error names the file and offset: " + file.message());
    return;
  }
  const GgufFile& f = *file.value();
  for (const auto& t : f.tensors())
    fuzz_require(f.data_offset() + t.offset + t.n_bytes <= f.file_size(),
                 "tensor " + t.name + " inside the file");
  auto bytes = rewrite(f).write_to_bytes();
  fuzz_require(bytes.ok(), "an accepted file can be written back: " + (bytes.ok() ? "" : bytes.message()));
  auto again = GgufFile::parse("fuzz2.gguf", *bytes);
  fuzz_require(again.ok(), "a written file parses: " + (again.ok() ? "" : again.message()));
  const GgufFile& g = *again.value();
  fuzz_require(g.metadata().size() == f.metadata().size(), "same key count");
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    fuzz_require(g.metadata()[i].key == f.metadata()[i].key, "same keys in order");
    fuzz_require(g.metadata()[i].value == f.metadata()[i].value, "same value for " + f.metadata()[i].key);
  }
  fuzz_require(g.tensors().size() == f.tensors().size(), "same tensor count");
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = g.tensors()[i];
    fuzz_require(a.name == b.name && a.type == b.type && a.dims == b.dims, "same info for tensor " + a.name);
    fuzz_require(std::memcmp(f.tensor_data(a), g.tensor_data(b), a.n_bytes) == 0, "same bytes for " + a.name);
  }
}

// Arrays cut to a few entries: a seed keeps every key and type of the real file in a few KB.
GgufValue shortened(const GgufValue& v) {
  const GgufArray* a = v.as_array();
  if (a == nullptr) return v;
  constexpr size_t kKeep = 6;
  GgufArray s = *a;
  if (s.uints.size() > kKeep) s.uints.resize(kKeep);
  if (s.ints.size() > kKeep) s.ints.resize(kKeep);
  if (s.floats.size() > kKeep) s.floats.resize(kKeep);
  if (s.strings.size() > kKeep) s.strings.resize(kKeep);
  if (s.arrays.size() > kKeep) s.arrays.resize(kKeep);
  return GgufValue::array(std::move(s));
}

// Seeds: the committed trained models' metadata (arrays shortened) with their two smallest
// tensors, and a file with every value type and nested arrays.
int gguf_seeds(const std::string& dir) {
  int n = 0;
  auto fill = [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 31 + 7);
    return Status::success();
  };
  for (const char* model : {"trained-qwen3-bf16", "trained-qwen3moe-bf16"}) {
    auto f = GgufFile::open(source_dir() + "/falsifiers/fixtures/trained/" + model + ".gguf");
    if (!f.ok()) {
      std::fprintf(stderr, "fuzz: %s\n", f.message().c_str());
      return -1;
    }
    GgufWriter w;
    for (const auto& kv : (*f)->metadata()) w.add_kv(kv.key, shortened(kv.value));
    std::vector<const GgufTensorInfo*> small;
    for (const auto& t : (*f)->tensors()) small.push_back(&t);
    std::sort(small.begin(), small.end(), [](auto* a, auto* b) { return a->n_bytes < b->n_bytes; });
    for (size_t i = 0; i < small.size() && i < 2; ++i)
      w.add_tensor(small[i]->name, small[i]->type, small[i]->dims, fill);
    auto bytes = w.write_to_bytes();
    if (!bytes.ok() ||
        !write_seed(dir, std::string(model) + ".gguf",
                    std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size())))
      return -1;
    ++n;
  }
  GgufWriter a;
  a.add_kv("general.architecture", GgufValue::string("qwen3"));
  a.add_kv("general.alignment", GgufValue::u32(64));
  a.add_kv("u8", GgufValue::u8(1));
  a.add_kv("i16", GgufValue::i16(-2));
  a.add_kv("f64", GgufValue::f64(0.5));
  a.add_kv("b", GgufValue::boolean(true));
  a.add_kv("toks", GgufValue::array(GgufArray::of_strings({"a", "Ġb", "<|im_end|>"})));
  GgufArray nested;
  nested.elem_type = GgufValueType::ARRAY;
  nested.arrays = {GgufArray::of_i32({1, -1}), GgufArray::of_f32({0.25})};
  a.add_kv("nested", GgufValue::array(nested));
  a.add_tensor("w", GgmlType::F16, {4, 2}, fill);
  a.add_tensor("q", GgmlType::Q8_0, {32}, fill);
  a.add_tensor("t", GgmlType::Q4_K, {256}, fill);
  auto bytes = a.write_to_bytes();
  if (!bytes.ok() ||
      !write_seed(dir, "value-types.gguf",
                  std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size())))
    return -1;
  return n + 1;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(gguf, popper::fuzz::gguf_one_input, popper::fuzz::gguf_seeds);
