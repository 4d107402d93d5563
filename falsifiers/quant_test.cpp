// Falsifiers for engine/quant: the block layouts (hand-built blocks with known values, element
// by element), the reference quantisers' error on Gaussian data, exact f16/bf16 round trips and
// the traits table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/fp16.h"
#include "engine/core/rng.h"
#include "engine/quant/blocks.h"
#include "engine/quant/quant_rows.h"
#include "engine/quant/traits.h"

namespace popper {
namespace {

// Packs 8 six-bit scales and mins the way ggml-common.h documents block_q4_K.scales:
// bytes 0-3 low 6 bits of sc0-3 with sc4-7's top 2 bits in bits 6-7; bytes 4-7 the same for
// mins; bytes 8-11 sc4-7's low nibble | m4-7's low nibble << 4. Written independently of
// quant::pack_scale_min_k4 so a slip in either shows.
void pack_k4_scales(const int* sc, const int* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

// The 4-bit quant of element e (0..255) of a Q4_K/Q5_K block: group g = e / 64 owns bytes
// qs[32g .. 32g+31]; its first 32 elements are the low nibbles, the next 32 the high ones.
int nibble_of(const uint8_t* qs, int e) {
  const int g = e / 64, r = e % 64;
  return r < 32 ? qs[32 * g + r] & 0xF : qs[32 * g + r - 32] >> 4;
}
void set_nibble(uint8_t* qs, int e, int v) {
  const int g = e / 64, r = e % 64;
  uint8_t& b = qs[32 * g + (r % 32)];
  b = r < 32 ? static_cast<uint8_t>((b & 0xF0) | v) : static_cast<uint8_t>((b & 0x0F) | (v << 4));
}

constexpr int kSc[8] = {1, 17, 63, 5, 32, 48, 16, 60};  // values above 15 exercise the 6-bit split
constexpr int kMin[8] = {0, 63, 2, 33, 15, 16, 47, 9};

TEST(QuantLayout, Q4KDequantisesEachElementFromItsNibbleScaleAndMin) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  BlockQ4K b{};
  b.d = f32_to_fp16(0.5f);
  b.dmin = f32_to_fp16(0.25f);
  pack_k4_scales(kSc, kMin, b.scales);
  for (int e = 0; e < 256; ++e) set_nibble(b.qs, e, (e * 7 + 3) % 16);
  std::vector<float> y(256);
  quant::dequantize_row_q4_k(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    const float want = 0.5f * kSc[sub] * ((e * 7 + 3) % 16) - 0.25f * kMin[sub];
    ASSERT_EQ(y[e], want) << "element " << e;
  }
  // A few by hand: element 0 is nibble 3 of sub-block 0 (sc 1, m 0); element 33 is the high
  // nibble of byte 1, value (33*7+3)%16 = 10, sub-block 1 (sc 17, m 63).
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[33], 0.5f * 17 * 10 - 0.25f * 63);
  EXPECT_EQ(nibble_of(b.qs, 33), 10);
}

TEST(QuantLayout, Q5KHighBitComesFromQhBitTwoGroupsPlusHalf) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  BlockQ5K b{};
  b.d = f32_to_fp16(0.125f);
  b.dmin = f32_to_fp16(1.0f);
  pack_k4_scales(kSc, kMin, b.scales);
  auto value = [](int e) { return (e * 11 + 5) % 32; };
  for (int e = 0; e < 256; ++e) {
    set_nibble(b.qs, e, value(e) & 0xF);
    // Element 64g + 32h + l keeps its fifth bit in bit 2g + h of qh[l].
    const int g = e / 64, h = (e % 64) / 32, l = e % 32;
    if (value(e) & 16) b.qh[l] |= static_cast<uint8_t>(1 << (2 * g + h));
  }
  std::vector<float> y(256);
  quant::dequantize_row_q5_k(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32;
    ASSERT_EQ(y[e], 0.125f * kSc[sub] * value(e) - 1.0f * kMin[sub]) << "element " << e;
  }
}

TEST(QuantLayout, Q6KTakesLowBitsFromQlHighBitsFromQhAndScalePerSixteen) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  BlockQ6K b{};
  b.d = f32_to_fp16(0.0625f);
  const int8_t scales[16] = {1, -2, 3, -4, 127, -128, 7, 8, 9, 10, -11, 12, 13, 14, 15, -16};
  std::memcpy(b.scales, scales, 16);
  auto value = [](int e) { return (e * 5 + 3) % 64; };
  for (int e = 0; e < 256; ++e) {
    // 128-element halves; quarter k of a half: ql bytes (k % 2) * 32 + l, nibble k / 2;
    // qh byte l, bits 2k..2k+1.
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    uint8_t& lo = b.ql[64 * half + (k % 2) * 32 + l];
    lo |= static_cast<uint8_t>((value(e) & 0xF) << (4 * (k / 2)));
    b.qh[32 * half + l] |= static_cast<uint8_t>((value(e) >> 4) << (2 * k));
  }
  std::vector<float> y(256);
  quant::dequantize_row_q6_k(&b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    ASSERT_EQ(y[e], 0.0625f * scales[e / 16] * (value(e) - 32)) << "element " << e;
  }
  EXPECT_EQ(y[0], 0.0625f * 1 * (3 - 32));
}

TEST(QuantLayout, Q8_0IsScaleTimesSignedByte) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  BlockQ8_0 b[2];
  b[0].d = f32_to_fp16(0.125f);
  b[1].d = f32_to_fp16(-2.0f);
  for (int j = 0; j < 32; ++j) {
    b[0].qs[j] = static_cast<int8_t>(j * 8 - 128);
    b[1].qs[j] = static_cast<int8_t>(j - 16);
  }
  float y[64];
  quant::dequantize_row_q8_0(b, y, 64);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[31], 0.125f * 120);
  EXPECT_EQ(y[32], 32.0f);
  EXPECT_EQ(y[63], -30.0f);
}

TEST(QuantLayout, Q8KMapsLargestMagnitudeToMinus127AndBsumsSumSixteen) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  std::vector<float> x(256);
  for (int j = 0; j < 256; ++j) x[j] = static_cast<float>(j % 16) - 7.0f;
  x[40] = 25.4f;   // largest magnitude: the scale is -127 / 25.4
  x[41] = -25.4f;  // same magnitude later: must not win
  BlockQ8K b;
  quant::quantize_row_q8_k_ref(x.data(), &b, 256);
  EXPECT_FLOAT_EQ(b.d, 25.4f / -127.f);
  EXPECT_EQ(b.qs[40], -127);
  EXPECT_EQ(b.qs[41], 127);
  EXPECT_EQ(b.qs[0], 35);  // -7 * (-127 / 25.4) = 35
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
    EXPECT_EQ(b.bsums[g], sum) << "group " << g;
  }
}

TEST(QuantLayout, Q4KQuantiserPacksSixBitScalesLikeTheDocumentedLayout) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-LAYOUT");
  // Sub-blocks of very different ranges force scales above 15 (so the split 6-bit packing
  // matters) and a round trip through our own dequantiser must stay close.
  Rng rng(7);
  std::vector<float> x(256);
  for (int e = 0; e < 256; ++e) x[e] = rng.normal() * static_cast<float>(1 + (e / 32) * 3);
  BlockQ4K b;
  quant::quantize_row_q4_k_ref(x.data(), &b, 256);
  int sc_unpacked[8], m_unpacked[8];
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, b.scales, &s, &m);
    sc_unpacked[j] = s;
    m_unpacked[j] = m;
  }
  // The sub-block with the largest scale (and the one with the largest min) maps to 63.
  EXPECT_EQ(*std::max_element(sc_unpacked, sc_unpacked + 8), 63);
  EXPECT_EQ(*std::max_element(m_unpacked, m_unpacked + 8), 63);
  EXPECT_GT(*std::max_element(sc_unpacked, sc_unpacked + 8) - *std::min_element(sc_unpacked, sc_unpacked + 8),
            15)
      << "the data should need the high bits of the 6-bit scales";
  uint8_t repacked[12];
  pack_k4_scales(sc_unpacked, m_unpacked, repacked);
  EXPECT_EQ(std::memcmp(repacked, b.scales, 12), 0);
}

// ---- Round trips -------------------------------------------------------------------------

double relative_rmse(GgmlType type, const std::vector<float>& x) {
  const QuantTraits* t = quant_traits(type);
  std::vector<uint8_t> q(static_cast<size_t>(ggml_row_size(type, static_cast<int64_t>(x.size()))));
  std::vector<float> y(x.size());
  t->quantize_row_ref(x.data(), q.data(), static_cast<int64_t>(x.size()));
  t->dequantize_row(q.data(), y.data(), static_cast<int64_t>(x.size()));
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

std::vector<float> gaussian(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = rng.normal();
  return x;
}

struct RoundTripBound {
  GgmlType type;
  double max_relative_rmse;
  const char* reason;
};

// Measured on 64k approximately-N(0,1) values (printed by the test), bounds ~1.25x above. The
// numbers follow the grid: a b-bit step over a block's range r gives RMSE ~ r / 2^b / sqrt(12)
// (Q4_K: r ~ 4 sigma over 32 values, 15 steps -> ~0.077 sigma).
constexpr RoundTripBound kRoundTripBounds[] = {
    {GgmlType::Q8_0, 0.0065, "8-bit symmetric per 32: measured 0.0053"},
    {GgmlType::Q8_K, 0.0085, "8-bit symmetric per 256 (wider range): measured 0.0068"},
    {GgmlType::Q6_K, 0.025, "6-bit, int8 scale per 16: measured 0.0175 (0.0199 at 1e-3, fp16 d subnormal)"},
    {GgmlType::Q5_K, 0.045, "5-bit affine per 32: measured 0.036"},
    {GgmlType::Q4_K, 0.088, "4-bit affine per 32: measured 0.071"},
    {GgmlType::F16, 3e-4, "11-bit significand: measured 0.00021"},
    {GgmlType::BF16, 2.5e-3, "8-bit significand: measured 0.00167"},
};

TEST(QuantRoundTrip, GaussianErrorStaysWithinEachTypesBound) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ROUNDTRIP");
  const auto x = gaussian(65536, 42);
  for (const auto& b : kRoundTripBounds) {
    const double e = relative_rmse(b.type, x);
    std::printf("  %-5s relative RMSE %.5f (bound %.4f)\n", std::string(ggml_type_name(b.type)).c_str(), e,
                b.max_relative_rmse);
    EXPECT_LT(e, b.max_relative_rmse) << ggml_type_name(b.type) << ": " << b.reason;
    EXPECT_GT(e, 0.0) << ggml_type_name(b.type) << " lost nothing on random data: is it quantising at all?";
  }
  EXPECT_EQ(relative_rmse(GgmlType::F32, x), 0.0);
}

TEST(QuantRoundTrip, ScaledRowsKeepTheirBound) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ROUNDTRIP");
  // Real weights are not unit Gaussians: the bounds must hold at 1e-3 and 1e3 too.
  for (float scale : {1e-3f, 1e3f}) {
    auto x = gaussian(8192, 5);
    for (auto& v : x) v *= scale;
    for (const auto& b : kRoundTripBounds) {
      EXPECT_LT(relative_rmse(b.type, x), b.max_relative_rmse)
          << ggml_type_name(b.type) << " scale " << scale;
    }
  }
}

TEST(QuantRoundTrip, ZeroRowsQuantiseToZero) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ROUNDTRIP");
  const std::vector<float> x(512, 0.0f);
  for (const auto& b : kRoundTripBounds) {
    const QuantTraits* t = quant_traits(b.type);
    std::vector<uint8_t> q(static_cast<size_t>(ggml_row_size(b.type, 512)), 0xAB);
    std::vector<float> y(512, 1.0f);
    t->quantize_row_ref(x.data(), q.data(), 512);
    t->dequantize_row(q.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << ggml_type_name(b.type);
  }
}

TEST(QuantRoundTrip, EveryF16AndBf16BitPatternSurvivesARowRoundTrip) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ROUNDTRIP");
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
    std::vector<uint16_t> bits;
    std::vector<float> f(1);
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint16_t b = static_cast<uint16_t>(h);
      quant_traits(type)->dequantize_row(&b, f.data(), 1);
      if (!std::isnan(f[0])) bits.push_back(b);
    }
    std::vector<float> wide(bits.size());
    std::vector<uint16_t> back(bits.size());
    quant_traits(type)->dequantize_row(bits.data(), wide.data(), static_cast<int64_t>(bits.size()));
    quant_traits(type)->quantize_row_ref(wide.data(), back.data(), static_cast<int64_t>(bits.size()));
    EXPECT_EQ(back, bits) << ggml_type_name(type);
  }
}

TEST(QuantRoundTrip, Q8_0RoundsHalfwayValuesAwayFromZero) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-ROUNDTRIP");
  // amax 127 makes the scale exactly 1, so x * id is x itself: 2.5 -> 3, -3.5 -> -4 (roundf).
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -3.5f;
  x[3] = 0.5f;
  BlockQ8_0 b;
  quant::quantize_row_q8_0_ref(x.data(), &b, 32);
  EXPECT_EQ(fp16_to_f32(b.d), 1.0f);
  EXPECT_EQ(b.qs[1], 3);
  EXPECT_EQ(b.qs[2], -4);
  EXPECT_EQ(b.qs[3], 1);
}

TEST(QuantTraits, TableCoversTheComputeTypesWithGgmlsVecDotTypes) {
  struct Want {
    GgmlType type, vec_dot;
  };
  const Want want[] = {{GgmlType::F32, GgmlType::F32},   {GgmlType::F16, GgmlType::F32},
                       {GgmlType::BF16, GgmlType::F32},  {GgmlType::Q8_0, GgmlType::Q8_0},
                       {GgmlType::Q4_K, GgmlType::Q8_K}, {GgmlType::Q5_K, GgmlType::Q8_K},
                       {GgmlType::Q6_K, GgmlType::Q8_K}, {GgmlType::Q8_K, GgmlType::Q8_K}};
  for (const auto& w : want) {
    const QuantTraits* t = quant_traits(w.type);
    ASSERT_NE(t, nullptr) << ggml_type_name(w.type);
    EXPECT_EQ(t->type, w.type);
    EXPECT_EQ(t->vec_dot_type, w.vec_dot);
    EXPECT_TRUE(is_compute_type(w.type));
  }
  EXPECT_EQ(quant_traits(GgmlType::Q4_0), nullptr);
  EXPECT_FALSE(is_compute_type(GgmlType::IQ2_XXS));
}

// ---- Goldens from gguf-py (llama.cpp's Python package), scripts/make_quant_goldens.py ------

namespace golden {

std::vector<uint8_t> read_file(const std::string& name) {
  const std::string path = std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/quant/" + name;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return {};
  std::vector<uint8_t> bytes;
  uint8_t buf[4096];
  for (size_t got; (got = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.insert(bytes.end(), buf, buf + got);
  std::fclose(f);
  return bytes;
}

uint32_t u32_at(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

}  // namespace golden

TEST(QuantGolden, DequantisersMatchGgufPyBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-GGML-PARITY");
  const struct {
    GgmlType type;
    const char* file;
  } cases[] = {{GgmlType::Q4_K, "q4_K.dequant.bin"}, {GgmlType::Q5_K, "q5_K.dequant.bin"},
               {GgmlType::Q6_K, "q6_K.dequant.bin"}, {GgmlType::Q8_0, "q8_0.dequant.bin"},
               {GgmlType::F16, "f16.dequant.bin"},   {GgmlType::BF16, "bf16.dequant.bin"}};
  for (const auto& c : cases) {
    const auto bytes = golden::read_file(c.file);
    ASSERT_GE(bytes.size(), 8u) << "missing fixture " << c.file << " (scripts/make_quant_goldens.py)";
    const uint32_t n_blocks = golden::u32_at(bytes, 0), block_bytes = golden::u32_at(bytes, 4);
    const auto& info = ggml_type_info(c.type);
    ASSERT_EQ(block_bytes, info.type_size) << c.file;
    const int64_t n = n_blocks * info.block_size;
    ASSERT_EQ(bytes.size(), 8 + size_t(n_blocks) * block_bytes + size_t(n) * 4) << c.file;
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    std::memcpy(want.data(), bytes.data() + 8 + size_t(n_blocks) * block_bytes, size_t(n) * 4);
    quant_traits(c.type)->dequantize_row(bytes.data() + 8, got.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << c.file << " element " << i;
  }
}

TEST(QuantGolden, Q8_0QuantiserMatchesGgufPyBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-GGML-PARITY");
  const auto bytes = golden::read_file("q8_0.quant.bin");
  ASSERT_GE(bytes.size(), 4u) << "missing fixture q8_0.quant.bin (scripts/make_quant_goldens.py)";
  const uint32_t n = golden::u32_at(bytes, 0);
  const size_t q_bytes = size_t(n) / 32 * sizeof(BlockQ8_0);
  ASSERT_EQ(bytes.size(), 4 + size_t(n) * 4 + q_bytes);
  std::vector<float> x(n);
  std::memcpy(x.data(), bytes.data() + 4, size_t(n) * 4);
  std::vector<uint8_t> got(q_bytes);
  quant::quantize_row_q8_0_ref(x.data(), got.data(), n);
  EXPECT_EQ(0, std::memcmp(got.data(), bytes.data() + 4 + size_t(n) * 4, q_bytes));
}

TEST(QuantGolden, ReferenceQuantisersMatchGgmlsOwnBytes) {
  RecordProperty("falsification_id", "FALSIFY-QUANT-GGML-PARITY");
  // Bytes from libggml-base's quantize_row_*_ref on Gaussian rows at 1e-3, 1 and 1e3, with
  // outliers and an all-zero block (scripts/make_quant_goldens.py with GGML_BASE_LIB).
  const struct {
    GgmlType type;
    const char* file;
  } cases[] = {{GgmlType::Q4_K, "q4_K.ggml_ref.bin"},
               {GgmlType::Q5_K, "q5_K.ggml_ref.bin"},
               {GgmlType::Q6_K, "q6_K.ggml_ref.bin"},
               {GgmlType::Q8_K, "q8_K.ggml_ref.bin"},
               {GgmlType::Q8_0, "q8_0.ggml_ref.bin"}};
  for (const auto& c : cases) {
    const auto bytes = golden::read_file(c.file);
    ASSERT_GE(bytes.size(), 4u) << "missing fixture " << c.file << " (scripts/make_quant_goldens.py)";
    const int64_t n = golden::u32_at(bytes, 0);
    const size_t q_bytes = static_cast<size_t>(ggml_row_size(c.type, n));
    ASSERT_EQ(bytes.size(), 4 + size_t(n) * 4 + q_bytes) << c.file;
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), bytes.data() + 4, size_t(n) * 4);
    const uint8_t* want = bytes.data() + 4 + size_t(n) * 4;
    std::vector<uint8_t> got(q_bytes);
    quant_traits(c.type)->quantize_row_ref(x.data(), got.data(), n);
    const size_t block_bytes = static_cast<size_t>(ggml_type_info(c.type).type_size);
    for (size_t off = 0; off < q_bytes; off += block_bytes) {
      ASSERT_EQ(0, std::memcmp(got.data() + off, want + off, block_bytes))
          << c.file << " block " << off / block_bytes;
    }
  }
}

}  // namespace
}  // namespace popper
