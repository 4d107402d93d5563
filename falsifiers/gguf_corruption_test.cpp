// GGUF corruption suite: every damaged file must give a clean error that names the field or
// tensor and the byte offset, never a crash or an out-of-bounds read. The parser reads an owned
// copy of exactly the damaged bytes, so under ASan (scripts/test-sanitize.sh) a read one byte
// past the end is caught.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/core/rng.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"
#include "falsifiers/gguf_test_util.h"

namespace popper {
namespace {

using gguf_test::Bytes;
using gguf_test::peek;
using gguf_test::poke;
using gguf_test::string_field_at;
using gguf_test::tensor_info_fields;

constexpr const char* kName = "corrupt.gguf";
// Random flips per run: enough to hit every field kind many times, fast under ASan.
constexpr int kFlipTrials = 4000;
// Data-region truncation points sampled (the header region is cut at every byte).
constexpr int kDataCutSamples = 256;

// A small file shaped like a real model: general/arch keys, a tokenizer with string, i32 and
// f32 arrays and merges, a chat template, and tensors of several types and ranks.
std::vector<uint8_t> realistic_file() {
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("qwen3moe"));
  w.add_kv("general.name", GgufValue::string("corruption fixture"));
  w.add_kv("general.file_type", GgufValue::u32(15));
  w.add_kv("general.quantization_version", GgufValue::u32(2));
  w.add_kv("general.alignment", GgufValue::u32(32));
  const char* u32_keys[] = {"context_length",
                            "embedding_length",
                            "block_count",
                            "feed_forward_length",
                            "expert_feed_forward_length",
                            "attention.head_count",
                            "attention.head_count_kv",
                            "attention.key_length",
                            "attention.value_length",
                            "expert_count",
                            "expert_used_count"};
  uint32_t v = 64;
  for (const char* k : u32_keys) w.add_kv(str_cat("qwen3moe.", k), GgufValue::u32(v++));
  w.add_kv("qwen3moe.rope.freq_base", GgufValue::f32(1e6f));
  w.add_kv("qwen3moe.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  w.add_kv("qwen3moe.expert_weights_norm", GgufValue::boolean(true));
  w.add_kv("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.add_kv("tokenizer.ggml.pre", GgufValue::string("qwen2"));
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<double> scores;
  for (int i = 0; i < 96; ++i) {
    tokens.push_back(i < 64 ? std::string(1, static_cast<char>('!' + i)) : str_cat("Ġtok", i));
    types.push_back(i % 7 == 0 ? 3 : 1);
    scores.push_back(-static_cast<double>(i));
  }
  tokens.push_back("<|im_start|>");
  tokens.push_back("<|im_end|>");
  types.push_back(3);
  types.push_back(3);
  scores.push_back(0.0);
  scores.push_back(0.0);
  w.add_kv("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings(tokens)));
  w.add_kv("tokenizer.ggml.token_type", GgufValue::array(GgufArray::of_i32(types)));
  w.add_kv("tokenizer.ggml.scores", GgufValue::array(GgufArray::of_f32(scores)));
  w.add_kv("tokenizer.ggml.merges", GgufValue::array(GgufArray::of_strings({"Ġ t", "Ġt o", "o k", "Ġ Ġ"})));
  w.add_kv("tokenizer.ggml.eos_token_id", GgufValue::u32(97));
  w.add_kv("tokenizer.ggml.padding_token_id", GgufValue::u32(97));
  w.add_kv("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.add_kv("tokenizer.chat_template",
           GgufValue::string("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                             "{% endfor %}"));
  GgufArray nested;
  nested.elem_type = GgufValueType::ARRAY;
  nested.arrays = {GgufArray::of_u32({1, 2}), GgufArray::of_u32({3})};
  w.add_kv("test.nested", GgufValue::array(nested));
  w.add_kv("test.i64", GgufValue::i64(-1));
  w.add_kv("test.f64", GgufValue::f64(2.5));

  auto fill = [](uint64_t seed) {
    return [seed](std::span<uint8_t> out) {
      Rng rng(seed);
      for (auto& b : out) b = static_cast<uint8_t>(rng.next());
      return Status::success();
    };
  };
  w.add_tensor("token_embd.weight", GgmlType::Q4_K, {256, 98}, fill(1));
  w.add_tensor("blk.0.attn_norm.weight", GgmlType::F32, {64}, fill(2));
  w.add_tensor("blk.0.attn_q.weight", GgmlType::Q8_0, {64, 64}, fill(3));
  w.add_tensor("blk.0.attn_k.weight", GgmlType::F16, {64, 16}, fill(4));
  w.add_tensor("blk.0.ffn_up_exps.weight", GgmlType::Q6_K, {256, 4, 3}, fill(5));
  w.add_tensor("blk.0.ffn_gate_inp.weight", GgmlType::F32, {64, 3}, fill(6));
  w.add_tensor("output_norm.weight", GgmlType::BF16, {64}, fill(7));
  auto bytes = w.write_to_bytes();
  EXPECT_TRUE(bytes.ok()) << bytes.message();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

const std::vector<uint8_t>& fixture() {
  static const std::vector<uint8_t> bytes = realistic_file();
  return bytes;
}

uint64_t fixture_data_offset() {
  auto file = GgufFile::parse(kName, fixture());
  EXPECT_TRUE(file.ok()) << file.message();
  return file.ok() ? file.value()->data_offset() : 0;
}

// A successfully parsed image must describe only bytes inside it; touching every tensor byte
// lets ASan catch a pointer that escapes the buffer.
void expect_in_bounds(const GgufFile& file) {
  for (const auto& t : file.tensors()) {
    ASSERT_LE(file.data_offset() + t.offset + t.n_bytes, file.file_size()) << t.name;
    const uint8_t* p = file.tensor_data(t);
    unsigned sum = 0;
    for (uint64_t i = 0; i < t.n_bytes; ++i) sum += p[i];
    (void)sum;
  }
}

// Parses `image` expecting rejection; returns the message (empty if it parsed).
std::string expect_rejected(const std::vector<uint8_t>& image) {
  auto file = GgufFile::parse(kName, image);
  EXPECT_FALSE(file.ok()) << "a damaged image parsed";
  if (file.ok()) return "";
  const std::string& msg = file.message();
  EXPECT_EQ(msg.rfind(str_cat(kName, ": offset "), 0), 0u) << msg;
  return msg;
}

void expect_message_has(const std::string& msg, std::initializer_list<const char*> needles) {
  for (const char* n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "want '" << n << "' in: " << msg;
}

TEST(GgufCorruption, FixtureIsRealisticAndParses) {
  auto file = GgufFile::parse(kName, fixture());
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_GE(file.value()->metadata().size(), 30u);
  EXPECT_EQ(file.value()->tensors().size(), 7u);
  expect_in_bounds(*file.value());
}

TEST(GgufCorruption, TruncationAtEveryHeaderByteGivesCleanError) {
  const auto& full = fixture();
  const uint64_t data_offset = fixture_data_offset();
  ASSERT_GT(data_offset, 0u);
  for (uint64_t cut = 0; cut < data_offset; ++cut) {
    std::vector<uint8_t> image(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    auto file = GgufFile::parse(kName, image);
    ASSERT_FALSE(file.ok()) << "prefix of " << cut << " bytes parsed";
    ASSERT_NE(file.message().find("offset"), std::string::npos) << file.message();
  }
}

TEST(GgufCorruption, TruncationInsideTheDataRegionNamesTheTensorThatNoLongerFits) {
  const auto& full = fixture();
  const uint64_t data_offset = fixture_data_offset();
  Rng rng(11);
  for (int i = 0; i < kDataCutSamples; ++i) {
    // The first and last data bytes, then random points between.
    const uint64_t cut = i == 0   ? data_offset
                         : i == 1 ? full.size() - 1
                                  : data_offset + rng.below(full.size() - data_offset);
    std::vector<uint8_t> image(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    auto file = GgufFile::parse(kName, image);
    if (file.ok()) {
      // Only the zero padding after the last tensor may be cut away.
      expect_in_bounds(*file.value());
      continue;
    }
    expect_message_has(file.message(), {"tensor '", "ends past the end of the file", "offset"});
  }
}

TEST(GgufCorruption, RandomByteFlipsGiveCleanErrorOrInBoundsParse) {
  const auto& full = fixture();
  const uint64_t data_offset = fixture_data_offset();
  Rng rng(2024);
  int rejected = 0;
  for (int trial = 0; trial < kFlipTrials; ++trial) {
    std::vector<uint8_t> image = full;
    const int n_flips = 1 + static_cast<int>(rng.below(4));
    for (int f = 0; f < n_flips; ++f) {
      // Mostly the header, where structure lives; sometimes anywhere.
      const uint64_t at = rng.below(8) == 0 ? rng.below(image.size()) : rng.below(data_offset);
      // Half the time a single bit, half the time a whole random byte (size fields' high bytes).
      if (rng.below(2) == 0) {
        image[at] ^= static_cast<uint8_t>(1u << rng.below(8));
      } else {
        image[at] = static_cast<uint8_t>(rng.next());
      }
    }
    auto file = GgufFile::parse(kName, image);
    if (file.ok()) {
      expect_in_bounds(*file.value());
    } else {
      ++rejected;
      ASSERT_EQ(file.message().rfind(str_cat(kName, ": offset "), 0), 0u) << file.message();
    }
  }
  RecordProperty("rejected", rejected);
  EXPECT_GT(rejected, kFlipTrials / 10) << "flips in the header should mostly be caught";
}

TEST(GgufCorruption, HugeHeaderCountsAreRejectedBeforeAllocating) {
  for (uint64_t huge : {uint64_t{1} << 63, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 40}) {
    auto image = fixture();
    poke<uint64_t>(image, 8, huge);
    expect_message_has(expect_rejected(image), {"n_tensors", "cannot fit", "offset 8"});
    image = fixture();
    poke<uint64_t>(image, 16, huge);
    expect_message_has(expect_rejected(image), {"n_kv", "cannot fit", "offset 16"});
  }
}

TEST(GgufCorruption, HugeArrayCountsAndStringLengthsAreRejected) {
  const auto& full = fixture();
  const size_t tokens_key = string_field_at(full, "tokenizer.ggml.tokens");
  const size_t count_at = tokens_key + 8 + 21 + 4 + 4;  // key, value type, element type
  ASSERT_EQ(peek<uint64_t>(full, count_at), 98u);
  for (uint64_t huge : {uint64_t{1} << 63, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 32}) {
    auto image = full;
    poke<uint64_t>(image, count_at, huge);
    expect_message_has(expect_rejected(image),
                       {"key 'tokenizer.ggml.tokens'", "array count", str_cat("offset ", count_at).c_str()});

    // The length of the 3rd token string.
    image = full;
    size_t elem = count_at + 8;
    for (int i = 0; i < 2; ++i) elem += 8 + peek<uint64_t>(full, elem);
    poke<uint64_t>(image, elem, huge);
    expect_message_has(expect_rejected(image), {"key 'tokenizer.ggml.tokens' element 2", "string length"});

    // A key's own length.
    image = full;
    poke<uint64_t>(image, string_field_at(full, "general.name"), huge);
    expect_message_has(expect_rejected(image), {"metadata key #1", "string length"});

    // A string value's length.
    image = full;
    const size_t name_value = string_field_at(full, "general.name") + 8 + 12 + 4;
    poke<uint64_t>(image, name_value, huge);
    expect_message_has(expect_rejected(image), {"key 'general.name' value", "string length"});

    // A tensor name's length.
    image = full;
    poke<uint64_t>(image, string_field_at(full, "output_norm.weight"), huge);
    expect_message_has(expect_rejected(image), {"tensor #6 name", "string length"});
  }
}

TEST(GgufCorruption, BadMagicVersionAndValueTypesAreNamed) {
  auto image = fixture();
  image[0] = 'X';
  expect_message_has(expect_rejected(image), {"bad magic", "offset 0"});
  for (uint32_t version : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    image = fixture();
    poke<uint32_t>(image, 4, version);
    expect_message_has(expect_rejected(image), {"version", "offset 4"});
  }
  image = fixture();
  const size_t type_at = string_field_at(image, "general.file_type") + 8 + 17;
  poke<uint32_t>(image, type_at, 13);
  expect_message_has(expect_rejected(image), {"key 'general.file_type'", "invalid value type 13",
                                              str_cat("offset ", type_at).c_str()});
  image = fixture();
  const size_t elem_type_at = string_field_at(image, "tokenizer.ggml.merges") + 8 + 21 + 4;
  poke<uint32_t>(image, elem_type_at, 0xFFFFFFFF);
  expect_message_has(expect_rejected(image), {"key 'tokenizer.ggml.merges'", "invalid array element type"});
  image = fixture();
  const size_t bool_at = string_field_at(image, "qwen3moe.expert_weights_norm") + 8 + 28 + 4;
  poke<uint8_t>(image, bool_at, 2);
  expect_message_has(expect_rejected(image), {"key 'qwen3moe.expert_weights_norm'", "invalid bool value 2"});
}

TEST(GgufCorruption, BadGeneralAlignmentIsRejected) {
  const size_t type_at = string_field_at(fixture(), "general.alignment") + 8 + 17;
  auto image = fixture();
  poke<uint32_t>(image, type_at, static_cast<uint32_t>(GgufValueType::INT32));
  expect_message_has(expect_rejected(image), {"general.alignment", "want u32, got i32", "offset"});
  for (uint32_t bad : {0u, 3u, 48u}) {
    image = fixture();
    poke<uint32_t>(image, type_at + 4, bad);
    expect_message_has(expect_rejected(image), {"general.alignment", "power of two", "offset"});
  }
}

TEST(GgufCorruption, DuplicateKeysAndTensorNamesAreRejected) {
  auto image = fixture();
  // "test.f64" -> "test.i64": same length, now a duplicate of the earlier key.
  const size_t f64_key = string_field_at(image, "test.f64");
  image[f64_key + 8 + 5] = 'i';
  expect_message_has(expect_rejected(image),
                     {"key 'test.i64'", "duplicate key", str_cat("offset ", f64_key).c_str()});

  image = fixture();
  // "blk.0.attn_k.weight" -> "blk.0.attn_q.weight".
  const size_t k_name = string_field_at(image, "blk.0.attn_k.weight");
  image[k_name + 8 + 11] = 'q';
  expect_message_has(expect_rejected(image), {"tensor 'blk.0.attn_q.weight'", "duplicate tensor name",
                                              str_cat("offset ", k_name).c_str()});
}

TEST(GgufCorruption, OverlappingOutOfRangeAndMisalignedTensorDataAreRejected) {
  const auto& full = fixture();
  const auto q = tensor_info_fields(full, "blk.0.attn_q.weight");
  const auto k = tensor_info_fields(full, "blk.0.attn_k.weight");
  const uint64_t q_offset = peek<uint64_t>(full, q.offset);

  auto image = full;
  poke<uint64_t>(image, k.offset, q_offset);
  expect_message_has(expect_rejected(image),
                     {"overlaps", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "offset"});

  image = full;
  poke<uint64_t>(image, k.offset, q_offset + 32);  // aligned, but inside q's 4352 bytes
  expect_message_has(expect_rejected(image), {"overlaps", "blk.0.attn_k.weight"});

  for (uint64_t far : {uint64_t{full.size()}, uint64_t{1} << 62, std::numeric_limits<uint64_t>::max() - 31}) {
    image = full;
    poke<uint64_t>(image, k.offset, far / 32 * 32);
    expect_message_has(expect_rejected(image),
                       {"tensor 'blk.0.attn_k.weight'", "ends past the end of the file",
                        str_cat("offset ", k.name).c_str()});
  }

  image = full;
  poke<uint64_t>(image, k.offset, peek<uint64_t>(full, k.offset) + 1);
  expect_message_has(expect_rejected(image),
                     {"tensor 'blk.0.attn_k.weight'", "not a multiple of the alignment 32",
                      str_cat("offset ", k.offset).c_str()});
}

TEST(GgufCorruption, UnknownTypesAndBadDimsAreRejected) {
  const auto& full = fixture();
  const auto t = tensor_info_fields(full, "blk.0.ffn_gate_inp.weight");  // f32 [64, 3]
  for (uint32_t bad_type : {4u, 5u, 31u, 33u, 36u, 40u, 0xFFFFFFFFu}) {
    auto image = full;
    poke<uint32_t>(image, t.type, bad_type);
    expect_message_has(expect_rejected(image), {"tensor 'blk.0.ffn_gate_inp.weight'",
                                                str_cat("unknown ggml type id ", bad_type).c_str(),
                                                str_cat("offset ", t.type).c_str()});
  }
  for (uint32_t n_dims : {0u, 5u, 0xFFFFFFFFu}) {
    auto image = full;
    poke<uint32_t>(image, t.n_dims, n_dims);
    expect_message_has(expect_rejected(image), {"tensor 'blk.0.ffn_gate_inp.weight'", "n_dims"});
  }
  struct DimsCase {
    int64_t ne0, ne1;
    const char* needle;
  };
  const DimsCase cases[] = {
      {0, 3, "ne[0] = 0"},
      {64, -1, "ne[1] = -1"},
      {std::numeric_limits<int64_t>::min(), 3, "ne[0]"},
      {int64_t{1} << 32, int64_t{1} << 32, "overflows"},
      {std::numeric_limits<int64_t>::max(), 2, "overflows"},
      {int64_t{1} << 61, 1, "byte size overflows"},  // element count fits, bytes (x4) do not
  };
  for (const auto& c : cases) {
    auto image = full;
    poke<int64_t>(image, t.ne, c.ne0);
    poke<int64_t>(image, t.ne + 8, c.ne1);
    expect_message_has(expect_rejected(image), {"tensor 'blk.0.ffn_gate_inp.weight'", c.needle, "offset"});
  }
  // Q4_K needs ne[0] to be a multiple of 256.
  const auto e = tensor_info_fields(full, "token_embd.weight");
  auto image = full;
  poke<int64_t>(image, e.ne, 255);
  expect_message_has(expect_rejected(image), {"tensor 'token_embd.weight'", "block size 256"});
}

TEST(GgufCorruption, DeeplyNestedArraysAreRejectedWithoutExhaustingTheStack) {
  Bytes b;
  b.u32(kGgufMagic).u32(3).u64(0).u64(1);
  b.str("deep").u32(static_cast<uint32_t>(GgufValueType::ARRAY));
  for (int i = 0; i < 100000; ++i) b.u32(static_cast<uint32_t>(GgufValueType::ARRAY)).u64(1);
  b.u32(0).u64(0);
  const std::string msg = expect_rejected(b.bytes());
  expect_message_has(msg, {"key 'deep'", "nested deeper than"});
}

TEST(GgufCorruption, OpenReportsMissingEmptyAndNonRegularFiles) {
  auto missing = GgufFile::open("/nonexistent/dir/m.gguf");
  ASSERT_FALSE(missing.ok());
  expect_message_has(missing.message(), {"/nonexistent/dir/m.gguf", "cannot open"});

  auto dir = GgufFile::open("/");
  ASSERT_FALSE(dir.ok());
  expect_message_has(dir.message(), {"not a regular file"});

  const auto empty_path =
      std::filesystem::temp_directory_path() / str_cat("popper-empty-", ::getpid(), ".gguf");
  { std::ofstream(empty_path.string()); }
  auto empty = GgufFile::open(empty_path.string());
  std::filesystem::remove(empty_path);
  ASSERT_FALSE(empty.ok());
  expect_message_has(empty.message(), {"offset 0", "header magic", "truncated"});
}

}  // namespace
}  // namespace popper
