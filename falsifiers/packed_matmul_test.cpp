// Falsifiers for the x8 repacked layouts (engine/cpu/repack.h) and their kernels
// (engine/cpu/packed_matmul.h): the repacking is lossless, and every packed kernel path gives
// the scalar reference's dot on the file's layout bit for bit (parity bound: 0 ulp), for every
// type, shape, token count, thread count, and at the extremes of the int16 headroom; and the file
// layout's default (AVX2) dots give the packed kernels' bits on quantiser-made weights.
#include "engine/cpu/packed_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/core/cpu_features.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/repack.h"
#include "engine/cpu/swiglu.h"
#include "engine/quant/blocks.h"
#include "falsifiers/kernel_test_util.h"

namespace popper::cpu {
namespace {

using testing::gaussian;
using testing::random_weight_row;

constexpr GgmlType kPackedTypes[] = {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0};

std::vector<uint8_t> random_matrix(GgmlType type, int64_t n_in, int64_t n_out, Rng& rng) {
  std::vector<uint8_t> m;
  for (int64_t r = 0; r < n_out; ++r) {
    const auto row = random_weight_row(type, n_in, rng);
    m.insert(m.end(), row.begin(), row.end());
  }
  return m;
}

std::vector<uint8_t> repacked(GgmlType type, const std::vector<uint8_t>& file, int64_t n_in, int64_t n_out) {
  std::vector<uint8_t> p(file.size());
  repack_rows(type, file.data(), n_in, n_out, p.data());
  return p;
}

// The reference: the scalar dot over the file's rows.
std::vector<float> reference(GgmlType type, const std::vector<uint8_t>& file, int64_t n_in, int64_t n_out,
                             const QuantizedActivations& x, int64_t ldy) {
  std::vector<float> y(static_cast<size_t>(x.n_rows() * ldy), -1.0f);
  const VecDotFn dot = vec_dot_fn(type, SimdPath::kScalar);
  const int64_t rb = ggml_row_size(type, n_in);
  for (int64_t t = 0; t < x.n_rows(); ++t) {
    for (int64_t r = 0; r < n_out; ++r) y[t * ldy + r] = dot(n_in, file.data() + r * rb, x.row(t));
  }
  return y;
}

bool avx2_available() { return vec_dot_fn(GgmlType::Q4_K, SimdPath::kAvx2) != nullptr; }

TEST(Repack, UnpackGivesTheFileBytesBackForEveryType) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-REPACK");
  Rng rng(31);
  for (GgmlType type : kPackedTypes) {
    const int64_t n_in = type == GgmlType::Q8_0 ? 96 : 512, n_out = 24;
    // Random bytes in every field (not only valid quantiser output): every bit must survive.
    std::vector<uint8_t> file(static_cast<size_t>(ggml_row_size(type, n_in) * n_out));
    for (auto& b : file) b = static_cast<uint8_t>(rng.next());
    const auto packed = repacked(type, file, n_in, n_out);
    std::vector<uint8_t> back(file.size());
    unpack_rows(type, packed.data(), n_in, n_out, back.data());
    EXPECT_EQ(back, file) << ggml_type_name(type);
    EXPECT_NE(packed, file) << ggml_type_name(type) << ": the layout should differ from the file's";
  }
}

TEST(PackedMatmul, EveryPathEqualsTheScalarReferenceBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  Rng rng(37);
  for (GgmlType type : kPackedTypes) {
    const GgmlType vt = quant_traits(type)->vec_dot_type;
    for (int64_t n_in : {256, 768, 2048}) {
      const int64_t n_out = 24;
      const auto file = random_matrix(type, n_in, n_out, rng);
      const auto packed = repacked(type, file, n_in, n_out);
      const PackedMatrix w = PackedMatrix::make(type, packed.data(), n_in, n_out);
      for (int64_t tokens : {1, 2, 3, 4, 5, 7, 9}) {
        const auto xf = gaussian(tokens * n_in, rng);
        QuantizedActivations x;
        x.quantize(xf.data(), tokens, n_in, n_in, vt);
        const int64_t ldy = n_out + 5;
        const auto want = reference(type, file, n_in, n_out, x, ldy);
        for (SimdPath path : {SimdPath::kScalar, SimdPath::kAvx2}) {
          if (path == SimdPath::kAvx2 && !avx2_available()) continue;
          std::vector<float> got(want.size(), -1.0f);
          packed_matmul_rows(w, x, got.data(), ldy, 0, n_out, path);
          ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
              << ggml_type_name(type) << " n_in " << n_in << " tokens " << tokens << " "
              << simd_path_name(path);
        }
      }
    }
  }
}

TEST(PackedMatmul, ThreadedRowSlicesEqualTheWholeMatrix) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  Rng rng(41);
  const GgmlType type = GgmlType::Q4_K;
  const int64_t n_in = 512, n_out = 8 * 13;
  const auto file = random_matrix(type, n_in, n_out, rng);
  const auto packed = repacked(type, file, n_in, n_out);
  const PackedMatrix w = PackedMatrix::make(type, packed.data(), n_in, n_out);
  const auto xf = gaussian(6 * n_in, rng);
  QuantizedActivations x;
  x.quantize(xf.data(), 6, n_in, n_in, GgmlType::Q8_K);
  const auto want = reference(type, file, n_in, n_out, x, n_out);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<float> got(want.size());
    packed_matmul(w, x, got.data(), n_out, pool);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << threads << " threads";
  }
  // An expert-style slice of rows reads the same bytes as the whole.
  const PackedMatrix part = w.rows(16, 40);
  std::vector<float> sliced(static_cast<size_t>(6 * 40));
  packed_matmul_rows(part, x, sliced.data(), 40, 0, 40);
  for (int64_t t = 0; t < 6; ++t) {
    for (int64_t r = 0; r < 40; ++r) ASSERT_EQ(sliced[t * 40 + r], want[t * n_out + 16 + r]) << t << " " << r;
  }
}

// The AVX-512 kernels, called directly (dispatch would fall back to AVX2 on a CPU without them):
// bit for bit the scalar reference, every type, shape and token count of the test above.
TEST(PackedMatmul, Avx512KernelsEqualTheScalarReferenceBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  if (!cpu_features().has_avx512_vnni())
    GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/VNNI; the AVX-512 path cannot run here";
  using Fn =
      void (*)(int64_t, const uint8_t*, int64_t, int64_t, const uint8_t*, int64_t, int64_t, float*, int64_t);
  const std::pair<GgmlType, Fn> kernels[] = {{GgmlType::Q4_K, avx512::packed_gemm_q4_k},
                                             {GgmlType::Q5_K, avx512::packed_gemm_q5_k},
                                             {GgmlType::Q6_K, avx512::packed_gemm_q6_k},
                                             {GgmlType::Q8_0, avx512::packed_gemm_q8_0}};
  Rng rng(67);
  for (const auto& [type, fn] : kernels) {
    for (int64_t n_in : {256, 768, 2048}) {
      const int64_t n_out = 24;
      const auto file = random_matrix(type, n_in, n_out, rng);
      const auto packed = repacked(type, file, n_in, n_out);
      for (int64_t tokens : {1, 2, 3, 4, 5, 7, 9}) {
        const auto xf = gaussian(tokens * n_in, rng);
        QuantizedActivations x;
        x.quantize(xf.data(), tokens, n_in, n_in, quant_traits(type)->vec_dot_type);
        const auto want = reference(type, file, n_in, n_out, x, n_out);
        std::vector<float> got(want.size(), -1.0f);
        fn(n_in, packed.data(), kPackRows * ggml_row_size(type, n_in), n_out / kPackRows, x.row(0),
           x.row_bytes(), tokens, got.data(), n_out);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
            << ggml_type_name(type) << " n_in " << n_in << " tokens " << tokens;
      }
    }
  }
}

// Rows quantised by the reference quantiser from float weights of a trained model's kind: a
// normal bulk with a per-row scale, and about 1 in 64 weights an outlier of 6-10x (what makes
// quantised rows differ from random bytes: the outliers set the scales, the bulk sits low).
std::vector<uint8_t> quantised_matrix(GgmlType type, int64_t n_in, int64_t n_out, Rng& rng) {
  std::vector<uint8_t> m(static_cast<size_t>(ggml_row_size(type, n_in) * n_out));
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    const float scale = rng.uniform(0.01f, 0.1f);
    for (auto& v : row) {
      v = scale * rng.normal();
      if (rng.next() % 64 == 0) v *= rng.uniform(6.0f, 10.0f);
    }
    quant_traits(type)->quantize_row_ref(row.data(), m.data() + r * ggml_row_size(type, n_in), n_in);
  }
  return m;
}

// Activations of a residual stream: a normal bulk with a few large channels, and (every other
// token) one sign throughout, which fills the int16 sums of a sub-block from one side.
std::vector<float> realistic_activations(int64_t tokens, int64_t n_in, Rng& rng) {
  std::vector<float> x = gaussian(tokens * n_in, rng);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < n_in; ++i) {
      float& v = x[static_cast<size_t>(t * n_in + i)];
      if (t % 2 == 1) v = std::fabs(v) + 0.5f;
      if (i % 97 == 13) v *= 20.0f;
    }
  }
  return x;
}

// What RepackedWeights (model_forward_test) rests on: with POPPER_REPACK=0 the model runs the
// file layout's default dots (matmul_rows on a WeightMatrix: AVX2, with its 4-token variants),
// and those give the packed kernels' bits. An ulp between them is not harmless: the next layer
// requantises its input to int8, and a value on a rounding boundary moves a whole level (on the
// tiny MoE Q4_K_M a 3e-7 difference after the Q5_K attn_output moved a Q8_0 level of attn_k's
// input, and the logits 2.04 apart through a routing flip). Shapes: the tiny models' attn_output
// [256 -> 256], 30b-a3b's attn_output input width (4096) and an expert's down (768).
TEST(PackedMatmul, FileLayoutDotsGiveThePackedKernelsBitsOnQuantisedWeights) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  if (!avx2_available()) GTEST_SKIP() << "CPU lacks AVX2/FMA: the file layout runs the scalar dots";
  Rng rng(71);
  for (GgmlType type : kPackedTypes) {
    const GgmlType vt = quant_traits(type)->vec_dot_type;
    for (const auto& [n_in, n_out] : {std::pair<int64_t, int64_t>{256, 256}, {4096, 16}, {768, 32}}) {
      const auto file = quantised_matrix(type, n_in, n_out, rng);
      const auto packed = repacked(type, file, n_in, n_out);
      const PackedMatrix w = PackedMatrix::make(type, packed.data(), n_in, n_out);
      const WeightMatrix fw = WeightMatrix::make(type, file.data(), n_in, n_out);
      for (int64_t tokens : {1, 4, 5, 9}) {
        const auto xf = realistic_activations(tokens, n_in, rng);
        QuantizedActivations x;
        x.quantize(xf.data(), tokens, n_in, n_in, vt);
        std::vector<float> want(static_cast<size_t>(tokens * n_out)), got(want.size());
        matmul_rows(fw, x, want.data(), n_out, 0, n_out);
        for (SimdPath path : {SimdPath::kAvx2, SimdPath::kAvx512}) {  // AVX-512: where the CPU has it
          packed_matmul_rows(w, x, got.data(), n_out, 0, n_out, path);
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], want[i])
                << ggml_type_name(type) << " [" << n_in << " -> " << n_out << "] tokens " << tokens << " "
                << simd_path_name(path) << ": token " << i / n_out << " row " << i % n_out;
          }
        }
      }
    }
  }
}

// The largest levels against activations of +-127 fill the int16 sums to their stated headroom
// (packed_gemm_avx2.cpp): an overflow there would show as a mismatch with the reference.
TEST(PackedMatmul, ExtremeLevelsAndActivationsStayExact) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  Rng rng(43);
  for (GgmlType type : kPackedTypes) {
    const GgmlType vt = quant_traits(type)->vec_dot_type;
    const int64_t n_in = 512, n_out = 8;
    auto file = random_matrix(type, n_in, n_out, rng);
    const int64_t nb = n_in / testing::block_size(type);
    for (int64_t i = 0; i < nb * n_out; ++i) {  // every level at its maximum
      switch (type) {
        case GgmlType::Q4_K:
          std::memset(reinterpret_cast<BlockQ4K*>(file.data())[i].qs, 0xFF, 128);
          break;
        case GgmlType::Q5_K: {
          auto& b = reinterpret_cast<BlockQ5K*>(file.data())[i];
          std::memset(b.qs, 0xFF, sizeof(b.qs));
          std::memset(b.qh, 0xFF, sizeof(b.qh));
          break;
        }
        case GgmlType::Q6_K: {
          auto& b = reinterpret_cast<BlockQ6K*>(file.data())[i];
          std::memset(b.ql, 0xFF, sizeof(b.ql));
          std::memset(b.qh, 0xFF, sizeof(b.qh));
          break;
        }
        default: {
          auto& b = reinterpret_cast<BlockQ8_0*>(file.data())[i];
          for (int e = 0; e < kQK8_0; ++e) b.qs[e] = static_cast<int8_t>(e % 2 ? -128 : 127);
        }
      }
    }
    const auto packed = repacked(type, file, n_in, n_out);
    const PackedMatrix w = PackedMatrix::make(type, packed.data(), n_in, n_out);
    for (float sign : {1.0f, -1.0f}) {
      // Equal activations quantise to +-127 everywhere.
      std::vector<float> xf(static_cast<size_t>(2 * n_in), sign);
      for (int64_t e = n_in; e < 2 * n_in; ++e) xf[e] = e % 2 ? -1.0f : 1.0f;
      QuantizedActivations x;
      x.quantize(xf.data(), 2, n_in, n_in, vt);
      const auto want = reference(type, file, n_in, n_out, x, n_out);
      std::vector<float> got(want.size());
      packed_matmul_rows(w, x, got.data(), n_out, 0, n_out);
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << ggml_type_name(type);
      // Each row alone: the one-token tiles (a decode step) at the same extremes.
      for (int64_t t = 0; t < 2; ++t) {
        QuantizedActivations one;
        one.quantize(xf.data() + t * n_in, 1, n_in, n_in, vt);
        std::vector<float> got1(static_cast<size_t>(n_out));
        packed_matmul_rows(w, one, got1.data(), n_out, 0, n_out);
        ASSERT_EQ(0, std::memcmp(got1.data(), want.data() + t * n_out, got1.size() * sizeof(float)))
            << ggml_type_name(type) << " one token, row " << t;
      }
    }
  }
}

TEST(PackedSwiglu, FusedGateUpEqualsTwoMatmulsThenSiluTimesUpBitForBit) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  Rng rng(61);
  const int64_t n_in = 512, n_ff = 768;  // three 256-row items, as a 30b-a3b expert
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const auto gate_file = random_matrix(type, n_in, n_ff, rng);
    const auto up_file = random_matrix(type, n_in, n_ff, rng);
    const auto gate_p = repacked(type, gate_file, n_in, n_ff), up_p = repacked(type, up_file, n_in, n_ff);
    const PackedMatrix gate = PackedMatrix::make(type, gate_p.data(), n_in, n_ff);
    const PackedMatrix up = PackedMatrix::make(type, up_p.data(), n_in, n_ff);
    for (int64_t tokens : {1, 5}) {
      const auto xf = gaussian(tokens * n_in, rng);
      QuantizedActivations x;
      x.quantize(xf.data(), tokens, n_in, n_in, GgmlType::Q8_K);
      const auto g = reference(type, gate_file, n_in, n_ff, x, n_ff);
      const auto u = reference(type, up_file, n_in, n_ff, x, n_ff);
      std::vector<float> want(g.size());
      for (size_t i = 0; i < g.size(); ++i) want[i] = silu(g[i]) * u[i];
      QuantizedActivations want_q;
      want_q.quantize(want.data(), tokens, n_ff, n_ff, GgmlType::Q8_K);
      std::vector<float> got(want.size(), -1.0f);
      QuantizedActivations got_q;
      got_q.prepare(tokens, n_ff, GgmlType::Q8_K);
      for (int64_t r = 0; r < n_ff; r += kSwigluChunk) {  // the work items, in any order
        packed_swiglu_rows(gate, up, x, got.data(), n_ff, n_ff - kSwigluChunk - r, n_ff - r, &got_q);
      }
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << ggml_type_name(type);
      for (int64_t t = 0; t < tokens; ++t) {
        ASSERT_EQ(0, std::memcmp(got_q.row(t), want_q.row(t), want_q.row_bytes()))
            << "quantised down input, token " << t;
      }
    }
  }
}

// Negative control: the parity check above must see a single changed weight nibble.
TEST(PackedMatmul, ControlOneCorruptedByteIsDetected) {
  RecordProperty("falsification_id", "FALSIFY-KERNEL-PACKED-PARITY");
  Rng rng(47);
  const GgmlType type = GgmlType::Q4_K;
  const int64_t n_in = 256, n_out = 8;
  const auto file = random_matrix(type, n_in, n_out, rng);
  auto packed = repacked(type, file, n_in, n_out);
  packed[offsetof(BlockQ4Kx8, qs) + 5] ^= 0x11;
  const auto xf = gaussian(n_in, rng);
  QuantizedActivations x;
  x.quantize(xf.data(), 1, n_in, n_in, GgmlType::Q8_K);
  const auto want = reference(type, file, n_in, n_out, x, n_out);
  std::vector<float> got(want.size());
  packed_matmul_rows(PackedMatrix::make(type, packed.data(), n_in, n_out), x, got.data(), n_out, 0, n_out);
  EXPECT_NE(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
}

}  // namespace
}  // namespace popper::cpu
