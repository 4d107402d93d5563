// libFuzzer target for the GGUF reader (built and run by scripts/fuzz-gguf.sh with clang; the
// normal GCC build does not compile it).
//
// Property checked on every input: parsing never crashes or reads out of bounds (ASan+UBSan),
// and any image the reader accepts describes only bytes inside itself and survives
// read(write(read(x))) == read(x): metadata equal, tensors equal in name, type, shape and bytes.
//
// Built with -DPOPPER_FUZZ_SEED_MAIN it is instead a small program that writes a seed corpus
// (valid files exercising every value type and several tensor types) into the directory given.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"

namespace {

void require(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "gguf_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

popper::GgufWriter rewrite(const popper::GgufFile& file) {
  popper::GgufWriter w;
  for (const auto& kv : file.metadata()) w.add_kv(kv.key, kv.value);
  for (const auto& t : file.tensors()) {
    const uint8_t* src = file.tensor_data(t);
    w.add_tensor(t.name, t.type, t.dims, [src](std::span<uint8_t> out) {
      std::memcpy(out.data(), src, out.size());
      return popper::Status::success();
    });
  }
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = popper::GgufFile::parse("fuzz.gguf", std::span<const uint8_t>(data, size));
  if (!file.ok()) {
    require(file.message().rfind("fuzz.gguf: offset ", 0) == 0, "error message names the file and offset");
    return 0;
  }
  const popper::GgufFile& f = *file.value();
  for (const auto& t : f.tensors()) {
    require(f.data_offset() + t.offset + t.n_bytes <= f.file_size(), "tensor data inside the file");
  }
  auto bytes = rewrite(f).write_to_bytes();
  require(bytes.ok(), "an accepted file can be written back");
  auto again = popper::GgufFile::parse("fuzz2.gguf", *bytes);
  require(again.ok(), "a written file parses");
  const popper::GgufFile& g = *again.value();
  require(g.metadata().size() == f.metadata().size(), "same key count");
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    require(g.metadata()[i].key == f.metadata()[i].key, "same keys in order");
    require(g.metadata()[i].value == f.metadata()[i].value, "same values");
  }
  require(g.tensors().size() == f.tensors().size(), "same tensor count");
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = g.tensors()[i];
    require(a.name == b.name && a.type == b.type && a.dims == b.dims, "same tensor info");
    require(std::memcmp(f.tensor_data(a), g.tensor_data(b), a.n_bytes) == 0, "same tensor bytes");
  }
  return 0;
}

#ifdef POPPER_FUZZ_SEED_MAIN
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  using namespace popper;
  auto fill = [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 31 + 7);
    return Status::success();
  };
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
  GgufWriter b;
  b.add_kv("k", GgufValue::u64(7));
  b.add_tensor("t", GgmlType::Q4_K, {256}, fill);
  b.add_tensor("n", GgmlType::F32, {3}, fill);
  int i = 0;
  for (const GgufWriter* w : {&a, &b}) {
    Status st = w->write(str_cat(argv[1], "/seed", i++, ".gguf"));
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  return 0;
}
#endif
