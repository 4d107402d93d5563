// Falsifiers for engine/cpu: every SIMD dot product against the scalar reference (the quantised
// ones bit for bit, the float ones within a stated summation bound), the scalar reference
// against dequantise-then-dot, the vectorised activation quantisers byte for byte against the
// reference, and the threaded, tiled matmul against a plain loop over the same dot.
#include "engine/cpu/vec_dot.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/core/cpu_features.h"
#include "engine/core/fp16.h"
#include "engine/core/rng.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/matmul.h"
#include "engine/quant/blocks.h"
#include "engine/quant/traits.h"
#include "falsifiers/kernel_test_util.h"

namespace popper::cpu {
namespace {

using testing::activation_row;
using testing::gaussian;
using testing::random_weight_row;

constexpr GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                     GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// Float summation bound: a dot that adds k float terms in any order differs from the exact
// sum by at most k * 2^-24 * sum|terms| (first-order); two such results differ by twice
// that. k = blocks for the quantised types (the block integers are exact), elements for
// the float ones. The 4x slack covers the scale products (d * y.d) rounded once more.
constexpr double kFloatEps = 1.0 / (1 << 24);
constexpr double kBoundSlack = 4.0;

bool simd_available() { return vec_dot_fn(GgmlType::Q4_K, SimdPath::kAvx2) != nullptr; }

using testing::block_size;

// sum |w_i * a_i| over the dequantised rows, and the exact (double) dot of the same.
struct DequantDot {
  double dot = 0;
  double abs_sum = 0;
};
DequantDot dequant_dot(GgmlType type, const uint8_t* w, const uint8_t* a, int64_t n) {
  std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
  quant_traits(type)->dequantize_row(w, wf.data(), n);
  quant_traits(quant_traits(type)->vec_dot_type)->dequantize_row(a, af.data(), n);
  DequantDot r;
  for (int64_t i = 0; i < n; ++i) {
    r.dot += double(wf[i]) * af[i];
    r.abs_sum += std::fabs(double(wf[i]) * af[i]);
  }
  return r;
}

// Copies `bytes` to offset `shift` of a fresh buffer: the kernels must not assume 32-byte
// (or any SIMD) alignment. Shifts stay multiples of the block's own alignment.
struct Shifted {
  std::vector<uint8_t> storage;
  const uint8_t* ptr;
  Shifted(const std::vector<uint8_t>& bytes, size_t shift) : storage(bytes.size() + 64) {
    const size_t base = (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
    std::memcpy(storage.data() + base + shift, bytes.data(), bytes.size());
    ptr = storage.data() + base + shift;
  }
};

size_t block_alignment(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return alignof(float);
    case GgmlType::Q8_0:
      return alignof(BlockQ8_0);
    case GgmlType::Q4_K:
      return alignof(BlockQ4K);
    case GgmlType::Q5_K:
      return alignof(BlockQ5K);
    case GgmlType::Q6_K:
      return alignof(BlockQ6K);
    case GgmlType::Q8_K:
      return alignof(BlockQ8K);
    default:
      return 2;  // F16, BF16
  }
}

TEST(VecDot, Avx2EqualsScalarBitForBitOnQuantisedTypesAndWithinTheSummationBoundOnFloats) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-SIMD-PARITY");
  if (!simd_available()) GTEST_SKIP() << "CPU lacks AVX2+FMA+F16C; the AVX2 path cannot run here";
  Rng rng(11);
  for (GgmlType type : kWeightTypes) {
    const bool is_float = block_size(type) == 1;
    const GgmlType vt = quant_traits(type)->vec_dot_type;
    for (int64_t blocks = 1; blocks <= 33; ++blocks) {
      // Float types: odd element counts too (the SIMD tail); quantised: whole blocks.
      const int64_t n = is_float ? blocks * 31 : blocks * block_size(type);
      const auto w = random_weight_row(type, n, rng);
      const auto a = activation_row(type, gaussian(n, rng));
      for (int k = 0; k < 4; ++k) {
        const Shifted ws(w, k * block_alignment(type));
        const Shifted as(a, ((k + 1) % 4) * block_alignment(vt));
        const float s = vec_dot_fn(type, SimdPath::kScalar)(n, ws.ptr, as.ptr);
        const float v = vec_dot_fn(type, SimdPath::kAvx2)(n, ws.ptr, as.ptr);
        if (!is_float) {
          // Quantised dots reduce each block's integers exactly and then take the reference's
          // float steps in its order, so they are the scalar's bits (an ulp here can move the
          // next layer's int8 rounding by a whole level: docs/cpu_kernels.md).
          ASSERT_EQ(std::bit_cast<uint32_t>(s), std::bit_cast<uint32_t>(v))
              << ggml_type_name(type) << " n=" << n << " shift " << k << ": scalar " << s << " avx2 " << v;
          continue;
        }
        // Float dots sum in SIMD lanes: within the summation bound of n terms.
        const DequantDot ref = dequant_dot(type, w.data(), a.data(), n);
        const double bound = kBoundSlack * 2 * double(n) * kFloatEps * ref.abs_sum + 1e-30;
        ASSERT_LE(std::fabs(double(s) - v), bound)
            << ggml_type_name(type) << " n=" << n << " shift " << k << ": scalar " << s << " avx2 " << v;
      }
    }
  }
}

TEST(VecDot, MultiTokenKernelsEqualTheSingleTokenDotBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-SIMD-PARITY");
  Rng rng(23);
  int checked = 0;
  for (GgmlType type : kWeightTypes) {
    const VecDotMultiFn multi = vec_dot_multi_fn(type, SimdPath::kAvx2);
    if (multi == nullptr) continue;
    for (int64_t blocks = 1; blocks <= 33; blocks += 4) {
      const int64_t n = blocks * block_size(type);
      const auto w = random_weight_row(type, n, rng);
      std::vector<std::vector<uint8_t>> rows;
      const void* a[kVecDotTokens];
      for (int t = 0; t < kVecDotTokens; ++t) rows.push_back(activation_row(type, gaussian(n, rng)));
      for (int t = 0; t < kVecDotTokens; ++t) a[t] = rows[t].data();
      float out[kVecDotTokens];
      multi(n, w.data(), a, out);
      for (int t = 0; t < kVecDotTokens; ++t) {
        const float single = vec_dot_fn(type, SimdPath::kAvx2)(n, w.data(), a[t]);
        ASSERT_EQ(0, std::memcmp(&out[t], &single, sizeof(float))) << ggml_type_name(type) << " token " << t;
      }
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no multi-token kernels on this CPU";
}

// Blocks whose scales are all 1 make every partial sum an integer below 2^24, so any float
// summation order gives the same exact value: the paths must agree bit for bit and equal the
// integer dot of the dequantised values. This pins the integer part (nibble unpacking, scale
// and min terms, the Q6_K offset) exactly rather than within a bound.
TEST(VecDot, IntegerPartIsExactOnEveryPath) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-SIMD-PARITY");
  Rng rng(3);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    for (int64_t blocks = 1; blocks <= 4; ++blocks) {
      const int64_t n = blocks * block_size(type);
      auto w = random_weight_row(type, n, rng);
      for (int64_t i = 0; i < n / block_size(type); ++i) {
        const uint16_t one = f32_to_fp16(1.0f);
        if (type == GgmlType::Q8_0) reinterpret_cast<BlockQ8_0*>(w.data())[i].d = one;
        if (type == GgmlType::Q4_K)
          reinterpret_cast<BlockQ4K*>(w.data())[i].d = one,
          reinterpret_cast<BlockQ4K*>(w.data())[i].dmin = one;
        if (type == GgmlType::Q5_K)
          reinterpret_cast<BlockQ5K*>(w.data())[i].d = one,
          reinterpret_cast<BlockQ5K*>(w.data())[i].dmin = one;
        if (type == GgmlType::Q6_K) reinterpret_cast<BlockQ6K*>(w.data())[i].d = one;
      }
      // Activations: small integers with scale 1 (|q| <= 8 keeps every sum below 2^24).
      std::vector<uint8_t> a(static_cast<size_t>(ggml_row_size(quant_traits(type)->vec_dot_type, n)));
      if (type == GgmlType::Q8_0) {
        for (int64_t i = 0; i < n / 32; ++i) {
          auto& b = reinterpret_cast<BlockQ8_0*>(a.data())[i];
          b.d = f32_to_fp16(1.0f);
          for (auto& q : b.qs) q = static_cast<int8_t>(static_cast<int>(rng.below(17)) - 8);
        }
      } else {
        for (int64_t i = 0; i < n / 256; ++i) {
          auto& b = reinterpret_cast<BlockQ8K*>(a.data())[i];
          b.d = 1.0f;
          for (auto& q : b.qs) q = static_cast<int8_t>(static_cast<int>(rng.below(17)) - 8);
          for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b.qs[16 * g + l];
            b.bsums[g] = static_cast<int16_t>(s);
          }
        }
      }
      const DequantDot ref = dequant_dot(type, w.data(), a.data(), n);
      ASSERT_LT(ref.abs_sum, 16777216.0) << "test data too large to be exact";
      for (SimdPath path : {SimdPath::kScalar, SimdPath::kAvx2}) {
        const VecDotFn fn = vec_dot_fn(type, path);
        if (fn == nullptr) continue;
        EXPECT_EQ(double(fn(n, w.data(), a.data())), ref.dot)
            << ggml_type_name(type) << " " << simd_path_name(path) << " blocks " << blocks;
      }
    }
  }
}

// Scalar reference vs dequantise-then-dot in double: the kernel multiplies scales in a
// different order (d * y.d * sumi rather than (d * sc) * q * y.d per element), each
// reordering costing an ulp or two of each block's terms.
constexpr double kScalarVsDequantRel = 4e-5;  // ~700 ulps of sum|w a|: order of operations only

TEST(VecDot, ScalarMatchesDequantiseThenDot) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-REFERENCE");
  Rng rng(5);
  for (GgmlType type : kWeightTypes) {
    for (int64_t blocks : {1, 2, 7, 16, 33}) {
      const int64_t n = blocks * (block_size(type) == 1 ? 64 : block_size(type));
      const auto w = random_weight_row(type, n, rng);
      const auto a = activation_row(type, gaussian(n, rng));
      const float s = vec_dot_fn(type, SimdPath::kScalar)(n, w.data(), a.data());
      const DequantDot ref = dequant_dot(type, w.data(), a.data(), n);
      // Q4_K/Q5_K subtract a min per element; the dequantised terms can cancel, so the bound
      // is taken on the magnitudes before the subtraction as well (abs_sum >= |dot|).
      EXPECT_NEAR(s, ref.dot, kScalarVsDequantRel * ref.abs_sum + 1e-30)
          << ggml_type_name(type) << " blocks " << blocks;
    }
  }
}

TEST(ActivationQuantize, Avx2WritesTheSameBytesAsTheReference) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-SIMD-PARITY");
  if (!simd_available()) GTEST_SKIP() << "CPU lacks AVX2+FMA+F16C";
  Rng rng(9);
  for (GgmlType vt : {GgmlType::Q8_K, GgmlType::Q8_0}) {
    for (int64_t blocks = 1; blocks <= 33; ++blocks) {
      const int64_t n = blocks * 256;
      auto x = gaussian(n, rng);
      // Ties and edge blocks: exact halves after scaling (a block whose max is 127 has scale
      // 1), an all-zero block, and equal magnitudes of opposite sign (first one wins).
      if (blocks % 3 == 0) {
        for (int64_t i = 0; i < 256; ++i) x[i] = static_cast<float>(static_cast<int>(i % 64) - 32) + 0.5f;
        x[0] = -127.0f;
        x[32] = 127.0f;
      }
      if (blocks % 5 == 0) std::fill(x.begin() + 256 * (blocks - 1), x.end(), 0.0f);
      if (blocks % 7 == 0) {
        x[1] = 1000.0f;
        x[2] = -1000.0f;
      }
      std::vector<uint8_t> ref(static_cast<size_t>(ggml_row_size(vt, n))), fast(ref.size(), 0xCD);
      quant_traits(vt)->quantize_row_ref(x.data(), ref.data(), n);
      activation_quantize_fn(vt, SimdPath::kAvx2)(x.data(), fast.data(), n);
      ASSERT_EQ(ref, fast) << ggml_type_name(vt) << " blocks " << blocks;
    }
  }
}

// ---- matmul ------------------------------------------------------------------------------

void naive_matmul(const WeightMatrix& w, const QuantizedActivations& x, float* y, int64_t ldy) {
  const VecDotFn dot = vec_dot_fn(w.type);
  for (int64_t t = 0; t < x.n_rows(); ++t) {
    for (int64_t r = 0; r < w.n_out; ++r) y[t * ldy + r] = dot(w.n_in, w.data + r * w.row_bytes, x.row(t));
  }
}

TEST(Matmul, ThreadedTiledMatmulEqualsPlainLoopBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-MATMUL");
  Rng rng(13);
  const int64_t n_in = 512, n_out = 37;  // odd row count: uneven chunks and tiles
  for (GgmlType type :
       {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q8_0, GgmlType::F16, GgmlType::F32}) {
    std::vector<uint8_t> wbytes;
    for (int64_t r = 0; r < n_out; ++r) {
      const auto row = random_weight_row(type, n_in, rng);
      wbytes.insert(wbytes.end(), row.begin(), row.end());
    }
    const WeightMatrix w = WeightMatrix::make(type, wbytes.data(), n_in, n_out);
    for (int64_t tokens : {1, 3, 17, 64}) {
      const auto xf = gaussian(tokens * n_in, rng);
      QuantizedActivations qx;
      qx.quantize(xf.data(), tokens, n_in, n_in, quant_traits(type)->vec_dot_type);
      const int64_t ldy = n_out + 3;
      std::vector<float> want(static_cast<size_t>(tokens * ldy), -1.0f);
      naive_matmul(w, qx, want.data(), ldy);
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> got(want.size(), -1.0f);
        matmul(w, qx, got.data(), ldy, pool);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
            << ggml_type_name(type) << " tokens " << tokens << " threads " << threads;
        // The f32 convenience path quantises the same way (threaded, vectorised).
        std::vector<float> got_f32(static_cast<size_t>(tokens * n_out));
        matmul_f32(w, xf.data(), tokens, got_f32.data(), pool);
        for (int64_t t = 0; t < tokens; ++t) {
          ASSERT_EQ(0, std::memcmp(got_f32.data() + t * n_out, want.data() + t * ldy, n_out * sizeof(float)))
              << ggml_type_name(type) << " matmul_f32 tokens " << tokens << " threads " << threads;
        }
      }
    }
  }
}

TEST(Matmul, RowSliceComputesTheSameOutputsAsTheWholeMatrix) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-MATMUL");
  Rng rng(17);
  const int64_t n_in = 256, n_out = 20;
  const auto wbytes = random_weight_row(GgmlType::Q4_K, n_in * n_out, rng);  // rows are contiguous blocks
  const WeightMatrix w = WeightMatrix::make(GgmlType::Q4_K, wbytes.data(), n_in, n_out);
  const auto xf = gaussian(2 * n_in, rng);
  QuantizedActivations qx;
  qx.quantize(xf.data(), 2, n_in, n_in, GgmlType::Q8_K);
  ThreadPool pool(2);
  std::vector<float> full(2 * n_out), part(2 * 10);
  matmul(w, qx, full.data(), n_out, pool);
  matmul(w.rows(5, 10), qx, part.data(), 10, pool);
  for (int t = 0; t < 2; ++t) {
    for (int r = 0; r < 10; ++r) EXPECT_EQ(part[t * 10 + r], full[t * n_out + 5 + r]);
  }
  EXPECT_EQ(w.rows(5, 10).row_bytes, w.row_bytes);
}

TEST(Matmul, QuantisedMatvecTracksTheF32ProductOfDequantisedWeights) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-REFERENCE");
  // End to end, activation quantisation included: Q8_K activations cost ~0.3% of each term
  // (8-bit grid per 256), so relative to sum|w x| the error stays below 1%.
  constexpr double kActivationQuantRel = 0.01;
  Rng rng(19);
  const int64_t n_in = 1024, n_out = 8;
  std::vector<float> wf = gaussian(n_in * n_out, rng);
  std::vector<uint8_t> wq(static_cast<size_t>(ggml_row_size(GgmlType::Q4_K, n_in) * n_out));
  quant_traits(GgmlType::Q4_K)->quantize_row_ref(wf.data(), wq.data(), n_in * n_out);
  quant_traits(GgmlType::Q4_K)->dequantize_row(wq.data(), wf.data(), n_in * n_out);
  const auto x = gaussian(n_in, rng);
  ThreadPool pool(2);
  std::vector<float> y(n_out);
  matmul_f32(WeightMatrix::make(GgmlType::Q4_K, wq.data(), n_in, n_out), x.data(), 1, y.data(), pool);
  for (int64_t r = 0; r < n_out; ++r) {
    double dot = 0, mag = 0;
    for (int64_t i = 0; i < n_in; ++i) {
      dot += double(wf[r * n_in + i]) * x[i];
      mag += std::fabs(double(wf[r * n_in + i]) * x[i]);
    }
    EXPECT_NEAR(y[r], dot, kActivationQuantRel * mag) << "row " << r;
  }
}

TEST(VecDot, DispatchHonoursTheSimdOverride) {
  // POPPER_SIMD caps the path (engine/core/cpu_features.h); without it the best path this CPU
  // supports is chosen: avx512 needs AVX-512 F/BW/VL/VNNI (its own kernels are the packed ones,
  // packed_matmul_test.cpp; on the file's layout it runs the AVX2 dots).
  const char* cap = std::getenv("POPPER_SIMD");
  const SimdPath p = active_simd_path();
  const SimdPath best = cpu_features().has_avx512_vnni() && simd_available() ? SimdPath::kAvx512
                        : simd_available()                                   ? SimdPath::kAvx2
                                                                             : SimdPath::kScalar;
  if (cap != nullptr && std::string(cap) == "scalar") {
    EXPECT_EQ(p, SimdPath::kScalar);
  } else if (cap != nullptr && std::string(cap) == "avx2") {
    EXPECT_EQ(p, best == SimdPath::kScalar ? SimdPath::kScalar : SimdPath::kAvx2);
  } else {
    EXPECT_EQ(p, best);
  }
  EXPECT_EQ(vec_dot_fn(GgmlType::Q4_0, SimdPath::kScalar), nullptr);
  EXPECT_EQ(vec_dot_fn(GgmlType::Q4_K, SimdPath::kAvx512) != nullptr, best == SimdPath::kAvx512)
      << "the avx512 path is offered exactly where the CPU has it";
}

}  // namespace
}  // namespace popper::cpu
