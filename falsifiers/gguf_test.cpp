// Falsifiers for engine/gguf: read(write(x)) == x for every metadata value type and every ggml
// tensor type, alignment rules, and the exact byte layout against a hand-assembled file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <limits>

#include "engine/core/ggml_type.h"
#include "engine/core/rng.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_value.h"
#include "engine/gguf/gguf_writer.h"
#include "falsifiers/gguf_test_util.h"

namespace popper {
namespace {

using gguf_test::Bytes;

// Every tensor type ggml has assigned an id (ids 0..63 probed; unassigned ones are skipped).
std::vector<GgmlTypeInfo> all_ggml_types() {
  std::vector<GgmlTypeInfo> out;
  for (uint32_t id = 0; id < 64; ++id) {
    if (auto info = ggml_type_info(id)) out.push_back(*info);
  }
  return out;
}

std::unique_ptr<GgufFile> parse_ok(const std::vector<uint8_t>& bytes) {
  auto file = GgufFile::parse("mem.gguf", bytes);
  EXPECT_TRUE(file.ok()) << file.message();
  return file.ok() ? std::move(file).value() : nullptr;
}

std::unique_ptr<GgufFile> round_trip(const GgufWriter& w) {
  auto bytes = w.write_to_bytes();
  EXPECT_TRUE(bytes.ok()) << bytes.message();
  if (!bytes.ok()) return nullptr;
  return parse_ok(*bytes);
}

GgufWriter::TensorFiller pattern_filler(uint64_t seed) {
  return [seed](std::span<uint8_t> out) {
    Rng rng(seed);
    for (auto& b : out) b = static_cast<uint8_t>(rng.next());
    return Status::success();
  };
}

std::vector<uint8_t> pattern_bytes(uint64_t seed, size_t n) {
  std::vector<uint8_t> v(n);
  Rng rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng.next());
  return v;
}

// Metadata covering every value type, the extremes of each, and awkward strings.
std::vector<GgufKeyValue> every_value_type() {
  std::vector<GgufKeyValue> kv;
  auto add = [&](std::string k, GgufValue v) { kv.push_back({std::move(k), std::move(v)}); };
  add("t.u8", GgufValue::u8(255));
  add("t.i8", GgufValue::i8(-128));
  add("t.u16", GgufValue::u16(65535));
  add("t.i16", GgufValue::i16(-32768));
  add("t.u32", GgufValue::u32(4294967295u));
  add("t.i32", GgufValue::i32(std::numeric_limits<int32_t>::min()));
  add("t.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  add("t.i64", GgufValue::i64(std::numeric_limits<int64_t>::min()));
  add("t.f32", GgufValue::f32(1e-6f));
  add("t.f32.negzero", GgufValue::f32(-0.0f));
  add("t.f32.inf", GgufValue::f32(-std::numeric_limits<float>::infinity()));
  add("t.f32.snan", GgufValue::f32(std::bit_cast<float>(0x7F800001u)));  // payload must survive
  add("t.f64", GgufValue::f64(0.1));
  add("t.f64.denorm", GgufValue::f64(std::numeric_limits<double>::denorm_min()));
  add("t.bool.true", GgufValue::boolean(true));
  add("t.bool.false", GgufValue::boolean(false));
  add("t.str", GgufValue::string("qwen3moe"));
  add("t.str.empty", GgufValue::string(""));
  add("t.str.unicode", GgufValue::string("Grüße, 世界 🙂 Ġhello ĊĊ"));
  add("t.str.nul", GgufValue::string(std::string("a\0b", 3)));
  add("t.arr.strings", GgufValue::array(GgufArray::of_strings({"!", "\"", "Ġthe", "<|im_start|>", ""})));
  add("t.arr.i32", GgufValue::array(GgufArray::of_i32({1, -2, std::numeric_limits<int32_t>::max()})));
  add("t.arr.u32", GgufValue::array(GgufArray::of_u32({0, 7, 4294967295u})));
  add("t.arr.f32",
      GgufValue::array(GgufArray::of_f32({0.5, -1.25, 0x1p100, -0.0, std::nan("")})));  // f32-exact
  GgufArray bools;
  bools.elem_type = GgufValueType::BOOL;
  bools.uints = {1, 0, 1};
  add("t.arr.bool", GgufValue::array(bools));
  // One array of every element type (and an empty array of every type).
  for (uint32_t t = 0; t <= 12; ++t) {
    const auto type = static_cast<GgufValueType>(t);
    GgufArray a;
    a.elem_type = type;
    GgufArray empty = a;
    switch (type) {
      case GgufValueType::UINT8:
        a.uints = {0, 200};
        break;
      case GgufValueType::UINT16:
        a.uints = {1, 60000};
        break;
      case GgufValueType::UINT32:
        a.uints = {2, 4000000000u};
        break;
      case GgufValueType::UINT64:
        a.uints = {3, 1ull << 63};
        break;
      case GgufValueType::BOOL:
        a.uints = {0, 1};
        break;
      case GgufValueType::INT8:
        a.ints = {-1, 127};
        break;
      case GgufValueType::INT16:
        a.ints = {-2, 32767};
        break;
      case GgufValueType::INT32:
        a.ints = {-3, 2000000000};
        break;
      case GgufValueType::INT64:
        a.ints = {-4, std::numeric_limits<int64_t>::max()};
        break;
      case GgufValueType::FLOAT32:
        a.floats = {0.25, -3.0};
        break;
      case GgufValueType::FLOAT64:
        a.floats = {0.1, -1e300};
        break;
      case GgufValueType::STRING:
        a.strings = {"x", "ÿ"};
        break;
      case GgufValueType::ARRAY: {
        a.arrays = {GgufArray::of_i32({1, 2}), GgufArray::of_strings({"nested"}), GgufArray::of_u32({})};
        empty.arrays = {};
        break;
      }
    }
    add(str_cat("t.arr.of.", gguf_value_type_name(type)), GgufValue::array(a));
    add(str_cat("t.arr.empty.", gguf_value_type_name(type)), GgufValue::array(empty));
  }
  // Arrays nested to the reader's depth limit.
  GgufArray deep = GgufArray::of_strings({"bottom"});
  for (int d = 1; d < kGgufMaxArrayDepth; ++d) {
    GgufArray outer;
    outer.elem_type = GgufValueType::ARRAY;
    outer.arrays = {deep, GgufArray::of_u32({static_cast<uint64_t>(d)})};
    deep = std::move(outer);
  }
  add("t.arr.deep", GgufValue::array(deep));
  return kv;
}

TEST(GgufRoundTrip, EveryMetadataValueTypeSurvivesExactly) {
  GgufWriter w;
  const auto kvs = every_value_type();
  for (const auto& kv : kvs) w.add_kv(kv.key, kv.value);
  auto file = round_trip(w);
  ASSERT_TRUE(file);
  ASSERT_EQ(file->metadata().size(), kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    // Same order, same key, same exact type and value (floats compared by bits).
    EXPECT_EQ(file->metadata()[i].key, kvs[i].key);
    EXPECT_EQ(file->metadata()[i].value.type(), kvs[i].value.type()) << kvs[i].key;
    EXPECT_TRUE(file->metadata()[i].value == kvs[i].value)
        << kvs[i].key << ": " << file->metadata()[i].value.summary();
  }
  const GgufValue* snan = file->find("t.f32.snan");
  ASSERT_TRUE(snan);
  EXPECT_EQ(snan->raw_uint(), 0x7F800001u);
  EXPECT_EQ(*file->find("t.str.nul")->as_string(), std::string("a\0b", 3));
  EXPECT_EQ(file->find("missing.key"), nullptr);
}

TEST(GgufRoundTrip, TensorsOfEveryGgmlTypeAndShapeSurviveByteForByte) {
  GgufWriter w;
  struct Expect {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    uint64_t n_bytes;
    uint64_t seed;
  };
  std::vector<Expect> expected;
  uint64_t seed = 1;
  for (const auto& info : all_ggml_types()) {
    const int64_t bs = info.block_size;
    const std::vector<std::vector<int64_t>> shapes = {{bs}, {bs * 3, 5}, {bs, 2, 3}, {bs * 2, 1, 3, 2}};
    for (const auto& dims : shapes) {
      int64_t n_rows = 1;
      for (size_t d = 1; d < dims.size(); ++d) n_rows *= dims[d];
      const uint64_t n_bytes = static_cast<uint64_t>(dims[0] / bs * info.type_size * n_rows);
      std::string name = str_cat(info.name, ".", dims.size(), "d");
      w.add_tensor(name, info.type, dims, pattern_filler(seed));
      expected.push_back({name, info.type, dims, n_bytes, seed});
      ++seed;
    }
  }
  auto file = round_trip(w);
  ASSERT_TRUE(file);
  ASSERT_EQ(file->tensors().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& t = file->tensors()[i];
    const auto& e = expected[i];
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(t.type, e.type) << e.name;
    EXPECT_EQ(t.dims, e.dims) << e.name;
    EXPECT_EQ(t.n_bytes, e.n_bytes) << e.name;
    const auto want = pattern_bytes(e.seed, e.n_bytes);
    EXPECT_EQ(std::memcmp(file->tensor_data(t), want.data(), want.size()), 0) << e.name;
    EXPECT_EQ(file->find_tensor(e.name), &t);
  }
  EXPECT_EQ(file->find_tensor("absent.weight"), nullptr);
}

// Offsets must be the running sum of sizes padded to the alignment, as ggml lays them out.
void expect_ggml_layout(const GgufFile& file, uint64_t alignment) {
  EXPECT_EQ(file.alignment(), alignment);
  EXPECT_EQ(file.data_offset() % alignment, 0u);
  uint64_t want = 0;
  for (const auto& t : file.tensors()) {
    EXPECT_EQ(t.offset % alignment, 0u) << t.name;
    EXPECT_EQ(t.offset, want) << t.name;
    want += (t.n_bytes + alignment - 1) / alignment * alignment;
  }
  EXPECT_EQ(file.file_size(), file.data_offset() + want);
}

GgufWriter odd_sized_tensors() {
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("x"));
  w.add_tensor("a", GgmlType::F32, {3}, pattern_filler(1));       // 12 bytes
  w.add_tensor("b", GgmlType::Q8_0, {32, 3}, pattern_filler(2));  // 102 bytes
  w.add_tensor("c", GgmlType::F16, {5, 1}, pattern_filler(3));    // 10 bytes
  w.add_tensor("d", GgmlType::Q6_K, {256}, pattern_filler(4));    // 210 bytes
  return w;
}

TEST(GgufLayout, OffsetsAreRunningSumOfSizesPaddedToDefaultAlignment32) {
  auto file = round_trip(odd_sized_tensors());
  ASSERT_TRUE(file);
  expect_ggml_layout(*file, kGgufDefaultAlignment);
}

TEST(GgufLayout, CustomGeneralAlignmentIsHonoured) {
  for (uint32_t alignment : {1u, 64u, 256u}) {
    GgufWriter w = odd_sized_tensors();
    w.add_kv("general.alignment", GgufValue::u32(alignment));
    auto file = round_trip(w);
    ASSERT_TRUE(file) << alignment;
    expect_ggml_layout(*file, alignment);
  }
}

// The expected bytes are assembled field by field from the spec, not by the writer.
TEST(GgufLayout, WriterOutputEqualsHandAssembledBytes) {
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("qwen3"));
  w.add_kv("qwen3.block_count", GgufValue::u32(2));
  w.add_kv("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings({"a", "bc"})));
  w.add_kv("flag", GgufValue::boolean(true));
  w.add_tensor("x", GgmlType::F32, {3}, [](std::span<uint8_t> out) {
    const float v[3] = {1.0f, -2.0f, 0.5f};
    std::memcpy(out.data(), v, sizeof(v));
    return Status::success();
  });
  w.add_tensor("y", GgmlType::F16, {2, 2}, [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(0xA0 + i);
    return Status::success();
  });
  auto got = w.write_to_bytes();
  ASSERT_TRUE(got.ok()) << got.message();

  Bytes b;
  b.u32(0x46554747).u32(3).u64(2).u64(4);
  b.str("general.architecture").u32(8).str("qwen3");
  b.str("qwen3.block_count").u32(4).u32(2);
  b.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).str("a").str("bc");
  b.str("flag").u32(7).u8(1);
  b.str("x").u32(1).i64(3).u32(0).u64(0);
  b.str("y").u32(2).i64(2).i64(2).u32(1).u64(32);  // 12 bytes of x padded to 32
  b.pad_to(32);
  const size_t data_start = b.size();
  b.f32(1.0f).f32(-2.0f).f32(0.5f).zeros(20);
  for (uint8_t i = 0; i < 8; ++i) b.u8(0xA0 + i);
  b.zeros(24);
  EXPECT_EQ(*got, b.bytes());

  auto file = parse_ok(b.bytes());
  ASSERT_TRUE(file);
  EXPECT_EQ(file->data_offset(), data_start);
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->tensors()[1].offset, 32u);
}

TEST(GgufReader, AcceptsVersion2AndRejectsVersion1And4) {
  for (uint32_t version : {1u, 2u, 3u, 4u, 0u}) {
    Bytes b;
    b.u32(0x46554747).u32(version).u64(1).u64(1);
    b.str("general.name").u32(8).str("v");
    b.str("w").u32(1).i64(4).u32(0).u64(0);
    b.pad_to(32).zeros(16);
    auto file = GgufFile::parse("v.gguf", b.bytes());
    if (version == 2 || version == 3) {
      ASSERT_TRUE(file.ok()) << file.message();
      EXPECT_EQ(file.value()->version(), version);
      EXPECT_EQ(file.value()->tensors()[0].n_bytes, 16u);
    } else {
      ASSERT_FALSE(file.ok()) << version;
      EXPECT_NE(file.message().find("version"), std::string::npos) << file.message();
      EXPECT_NE(file.message().find("v.gguf: offset 4"), std::string::npos) << file.message();
    }
  }
}

TEST(GgufReader, RejectsEmptyAndOverlongTensorNames) {
  for (size_t len : {size_t{0}, kGgufMaxTensorName + 1}) {
    Bytes b;
    b.u32(kGgufMagic).u32(3).u64(1).u64(0);
    b.str(std::string(len, 'n')).u32(1).i64(4).u32(0).u64(0);
    b.pad_to(32).zeros(16);
    auto file = GgufFile::parse("names.gguf", b.bytes());
    ASSERT_FALSE(file.ok()) << len;
    EXPECT_NE(file.message().find("names.gguf: offset 24: tensor"), std::string::npos) << file.message();
  }
  Bytes ok;
  ok.u32(kGgufMagic).u32(3).u64(1).u64(0);
  ok.str(std::string(kGgufMaxTensorName, 'n')).u32(1).i64(4).u32(0).u64(0);
  ok.pad_to(32).zeros(16);
  EXPECT_TRUE(GgufFile::parse("names.gguf", ok.bytes()).ok());
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "popper-gguf-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  size_t n_entries() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path_)) ++n;
    return n;
  }

 private:
  std::filesystem::path path_;
};

TEST(GgufWriter, WriteToDiskEqualsInMemoryBytesAndOpenMapsThem) {
  TempDir dir;
  GgufWriter w = odd_sized_tensors();
  for (const auto& kv : every_value_type()) w.add_kv(kv.key, kv.value);
  const std::string path = (dir.path() / "m.gguf").string();
  std::vector<uint64_t> progress;
  ASSERT_TRUE(w.write(path, [&](size_t done, size_t total, uint64_t bytes, uint64_t total_bytes) {
                 EXPECT_EQ(total, 4u);
                 EXPECT_LE(bytes, total_bytes);
                 progress.push_back(done);
               }).ok());
  EXPECT_EQ(progress, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(dir.n_entries(), 1u) << "no temp file may be left behind";
  auto mem = w.write_to_bytes();
  ASSERT_TRUE(mem.ok());
  auto opened = GgufFile::open(path);
  ASSERT_TRUE(opened.ok()) << opened.message();
  EXPECT_EQ(opened.value()->file_size(), mem->size());
  auto parsed = parse_ok(*mem);
  ASSERT_TRUE(parsed);
  ASSERT_EQ(opened.value()->tensors().size(), parsed->tensors().size());
  for (size_t i = 0; i < parsed->tensors().size(); ++i) {
    const auto& a = opened.value()->tensors()[i];
    const auto& b = parsed->tensors()[i];
    EXPECT_EQ(std::memcmp(opened.value()->tensor_data(a), parsed->tensor_data(b), a.n_bytes), 0) << a.name;
  }
  EXPECT_EQ(opened.value()->metadata().size(), parsed->metadata().size());
}

// A backend that copied the weights (repacked, uploaded) hands the file's pages back; the bytes
// must still read as the file's, mapped or held in memory. Negative control: madvise on the
// in-memory image (what release_pages skips) zeroes it, and the comparison below fails.
TEST(GgufReader, ReleasedPagesStillReadAsTheFilesBytes) {
  TempDir dir;
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("x"));
  w.add_tensor("big", GgmlType::F32, {256, 256}, pattern_filler(7));  // 256 KiB: many whole pages
  w.add_tensor("small", GgmlType::F32, {3}, pattern_filler(8));
  const std::string path = (dir.path() / "m.gguf").string();
  ASSERT_TRUE(w.write(path).ok());
  auto mem = w.write_to_bytes();
  ASSERT_TRUE(mem.ok());
  auto mapped = GgufFile::open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.message();
  auto held = GgufFile::parse("m.gguf", *mem);
  ASSERT_TRUE(held.ok()) << held.message();
  for (const GgufFile* f : {mapped.value().get(), held.value().get()}) {
    std::vector<std::vector<uint8_t>> before;
    for (const auto& t : f->tensors()) before.emplace_back(f->tensor_data(t), f->tensor_data(t) + t.n_bytes);
    for (const auto& t : f->tensors()) f->release_pages(f->tensor_data(t), t.n_bytes);
    for (size_t i = 0; i < f->tensors().size(); ++i) {
      const auto& t = f->tensors()[i];
      EXPECT_EQ(std::memcmp(f->tensor_data(t), before[i].data(), t.n_bytes), 0)
          << t.name << (f == mapped.value().get() ? " (mapped)" : " (in memory)");
    }
  }
}

TEST(GgufWriter, FillerErrorLeavesNoFileAndNoTempFile) {
  TempDir dir;
  GgufWriter w;
  w.add_tensor("ok", GgmlType::F32, {4}, pattern_filler(1));
  w.add_tensor("broken", GgmlType::F32, {4},
               [](std::span<uint8_t>) { return Status(make_error("disk on fire")); });
  const std::string path = (dir.path() / "m.gguf").string();
  Status st = w.write(path);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("broken"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("disk on fire"), std::string::npos) << st.message();
  EXPECT_EQ(dir.n_entries(), 0u);
}

TEST(GgufWriter, RejectsWhatLlamaCppWouldRefuse) {
  struct Case {
    const char* what;
    std::function<void(GgufWriter&)> build;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"duplicate key",
       [](GgufWriter& w) {
         w.add_kv("k", GgufValue::u8(1));
         w.add_kv("k", GgufValue::u8(2));
       },
       "duplicate key"},
      {"duplicate tensor",
       [](GgufWriter& w) {
         w.add_tensor("t", GgmlType::F32, {1}, nullptr);
         w.add_tensor("t", GgmlType::F32, {1}, nullptr);
       },
       "duplicate tensor name"},
      {"block size", [](GgufWriter& w) { w.add_tensor("q", GgmlType::Q4_K, {100}, nullptr); }, "block size"},
      {"five dims",
       [](GgufWriter& w) {
         w.add_tensor("t", GgmlType::F32, {1, 1, 1, 1, 1}, nullptr);
       },
       "n_dims"},
      {"no dims", [](GgufWriter& w) { w.add_tensor("t", GgmlType::F32, {}, nullptr); }, "n_dims"},
      {"zero dim",
       [](GgufWriter& w) {
         w.add_tensor("t", GgmlType::F32, {4, 0}, nullptr);
       },
       "ne[1]"},
      {"overflow",
       [](GgufWriter& w) {
         w.add_tensor("t", GgmlType::F32, {1ll << 40, 1ll << 40}, nullptr);
       },
       "overflow"},
      {"alignment type", [](GgufWriter& w) { w.add_kv("general.alignment", GgufValue::u64(32)); },
       "want u32"},
      {"alignment value", [](GgufWriter& w) { w.add_kv("general.alignment", GgufValue::u32(48)); },
       "power of two"},
      {"long name", [](GgufWriter& w) { w.add_tensor(std::string(64, 'n'), GgmlType::F32, {1}, nullptr); },
       "limit"},
  };
  for (const auto& c : cases) {
    GgufWriter w;
    c.build(w);
    auto bytes = w.write_to_bytes();
    ASSERT_FALSE(bytes.ok()) << c.what;
    EXPECT_NE(bytes.message().find(c.needle), std::string::npos) << c.what << ": " << bytes.message();
  }
}

TEST(GgufValue, LenientAccessorsConvertOnlyWhenTheValueFits) {
  EXPECT_EQ(GgufValue::u32(7).as_i64(), 7);
  EXPECT_EQ(GgufValue::i32(-1).as_u64(), std::nullopt);
  EXPECT_EQ(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_i64(), std::nullopt);
  EXPECT_EQ(GgufValue::i8(5).as_u64(), 5u);
  EXPECT_EQ(GgufValue::u16(3).as_f64(), 3.0);
  EXPECT_EQ(GgufValue::f32(0.5f).as_f64(), 0.5);
  EXPECT_EQ(GgufValue::f32(0.5f).as_u64(), std::nullopt);
  EXPECT_EQ(GgufValue::string("1").as_u64(), std::nullopt);
  EXPECT_EQ(GgufValue::boolean(true).as_bool(), true);
  EXPECT_EQ(GgufValue::u8(1).as_bool(), std::nullopt);
  EXPECT_EQ(GgufValue::u8(1).as_string(), nullptr);
  EXPECT_FALSE(GgufValue::u32(1) == GgufValue::i32(1));  // exact type is part of the value
}

TEST(GgufValue, SummaryShowsTypeCountAndFirstItemsOfLongArrays) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 151936; ++i) tokens.push_back(str_cat("tok", i));
  const std::string s = GgufValue::array(GgufArray::of_strings(tokens)).summary(60);
  EXPECT_EQ(s.rfind("[string x 151936: \"tok0\", \"tok1\"", 0), 0u) << s;
  EXPECT_NE(s.find(", ...]"), std::string::npos) << s;
  EXPECT_LE(s.size(), 70u) << s;
  EXPECT_EQ(GgufValue::string("a\"b\nc").summary(), "\"a\\\"b\\nc\"");
  EXPECT_EQ(GgufValue::string(std::string(100, 'x')).summary(10), "\"xxxxxxxxxx\"...");
  EXPECT_EQ(GgufValue::f32(1e-6f).summary(), "1e-06");
  EXPECT_EQ(GgufValue::i64(-5).summary(), "-5");
  EXPECT_EQ(GgufValue::array(GgufArray::of_i32({1, 2, 3})).summary(), "[i32 x 3: 1, 2, 3]");
  EXPECT_EQ(GgufValue::array(GgufArray::of_u32({})).summary(), "[u32 x 0]");
}

}  // namespace
}  // namespace popper
