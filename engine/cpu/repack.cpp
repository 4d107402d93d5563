// Repacking between the file's row-major blocks and the x8 layouts of repack.h. Load-time code,
// written for clarity: each block goes through its levels (the unsigned quant of every element)
// and scales, so both directions are the same few index maps.
#include "engine/cpu/repack.h"

#include <cstring>

#include "engine/core/result.h"
#include "engine/quant/k_quant_common.h"

namespace popper::cpu {
namespace {

// Where element e (0..31) of a 32-element chunk of row r lands in the nibble layout: the byte
// (relative to the chunk's 128 bytes), whether it is the high nibble, and the unpacking step.
struct NibbleSlot {
  int byte;
  bool high;
  int step;
};
NibbleSlot nibble_slot(int r, int e) {
  const bool high = e >= 16;
  const int q = (e % 16) / 4;
  return {q * 32 + r * 4 + e % 4, high, q + (high ? 4 : 0)};
}

// Levels (unsigned quants, one per element) of the file's blocks.
void q5k_levels(const BlockQ5K& b, uint8_t* L) {
  for (int e = 0; e < kQK_K; ++e) {
    const int g = e / 64, w = e % 64;
    const uint8_t byte = b.qs[32 * g + w % 32];
    const int hbit = (b.qh[w % 32] >> (2 * g + (w >= 32))) & 1;
    L[e] = static_cast<uint8_t>((w < 32 ? byte & 0xF : byte >> 4) | (hbit << 4));
  }
}
void q4k_from_levels(const uint8_t* L, BlockQ4K& b) {
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l)
      b.qs[32 * g + l] = static_cast<uint8_t>(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
  }
}
void q5k_from_levels(const uint8_t* L, BlockQ5K& b) {
  std::memset(b.qh, 0, sizeof(b.qh));
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = L[64 * g + l], hi = L[64 * g + 32 + l];
      b.qs[32 * g + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      b.qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
    }
  }
}
void q6k_from_levels(const uint8_t* L, BlockQ6K& b) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* l = L + 128 * half;
    uint8_t* ql = b.ql + 64 * half;
    uint8_t* qh = b.qh + 32 * half;
    for (int i = 0; i < 32; ++i) {
      ql[i] = static_cast<uint8_t>((l[i] & 0xF) | ((l[i + 64] & 0xF) << 4));
      ql[i + 32] = static_cast<uint8_t>((l[i + 32] & 0xF) | ((l[i + 96] & 0xF) << 4));
      qh[i] = static_cast<uint8_t>((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) |
                                   ((l[i + 96] >> 4) << 6));
    }
  }
}

// The 6-bit scales and mins of a Q4_K/Q5_K block, and their x8 packing.
void pack_k4_scales(const uint8_t* packed12, int r, uint8_t* scales_lo, uint8_t* scales_hi) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, packed12, &sc, &m);
    scales_lo[j * 8 + r] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    const uint8_t hi = static_cast<uint8_t>((sc >> 4) | ((m >> 4) << 2));
    scales_hi[(j % 4) * 8 + r] |= static_cast<uint8_t>(j < 4 ? hi : hi << 4);
  }
}
void unpack_k4_scales(const uint8_t* scales_lo, const uint8_t* scales_hi, int r, uint8_t* packed12) {
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    const uint8_t lo = scales_lo[j * 8 + r];
    const uint8_t hi =
        static_cast<uint8_t>((j < 4 ? scales_hi[(j % 4) * 8 + r] : scales_hi[(j % 4) * 8 + r] >> 4) & 0xF);
    ls[j] = static_cast<uint8_t>((lo & 0xF) | ((hi & 3) << 4));
    lm[j] = static_cast<uint8_t>((lo >> 4) | ((hi >> 2) << 4));
  }
  std::memset(packed12, 0, kKScaleSize);
  quant::pack_scale_min_k4(ls, lm, packed12);
}

// Nibble-layout levels of one packed group: L[r][e] for 8 rows and one 256-element super-block,
// written into / read from qs (low 4 bits), with the bits above 4 handed to `high_bits`.
template <class HighBits>
void weave_nibbles(const uint8_t (*L)[kQK_K], uint8_t* qs, HighBits high_bits) {
  std::memset(qs, 0, 1024);
  for (int r = 0; r < 8; ++r) {
    for (int e = 0; e < kQK_K; ++e) {
      const int j = e / 32;
      const NibbleSlot s = nibble_slot(r, e % 32);
      const uint8_t v = L[r][e];
      qs[128 * j + s.byte] |= static_cast<uint8_t>(s.high ? (v & 0xF) << 4 : v & 0xF);
      high_bits(j, r, e % 4, s, v >> 4);
    }
  }
}
template <class HighBits>
void unweave_nibbles(const uint8_t* qs, uint8_t (*L)[kQK_K], HighBits high_bits) {
  for (int r = 0; r < 8; ++r) {
    for (int e = 0; e < kQK_K; ++e) {
      const int j = e / 32;
      const NibbleSlot s = nibble_slot(r, e % 32);
      const uint8_t byte = qs[128 * j + s.byte];
      L[r][e] = static_cast<uint8_t>((s.high ? byte >> 4 : byte & 0xF) | (high_bits(j, r, e % 4, s) << 4));
    }
  }
}

template <class Block>
const Block& block_at(const void* base, int64_t row_bytes, int64_t row, int64_t i) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(base) + row * row_bytes)[i];
}
template <class Block>
Block& block_at(void* base, int64_t row_bytes, int64_t row, int64_t i) {
  return reinterpret_cast<Block*>(static_cast<uint8_t*>(base) + row * row_bytes)[i];
}

// Calls fn(group g, block i, packed block) for every packed block of an n_rows x n_in matrix.
template <class Packed, class Fn>
void for_each_packed(void* packed, int64_t n_in, int64_t n_rows, int64_t block_size, Fn fn) {
  const int64_t nb = n_in / block_size;
  auto* p = static_cast<Packed*>(packed);
  for (int64_t g = 0; g < n_rows / kPackRows; ++g) {
    for (int64_t i = 0; i < nb; ++i) fn(g, i, p[g * nb + i]);
  }
}

// Load-time hot path (every Q4_K byte of a model passes here): the nibbles move directly. Packed
// byte (j, q, r, k) takes element 32j + 4q + k (low) and 32j + 16 + 4q + k (high) of row r; in the
// file both sit in the nibble (j odd: high) of qs[32 (j / 2) + 4q + k] and qs[... + 16].
void repack_q4_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q4_K, n_in);
  for_each_packed<BlockQ4Kx8>(dst, n_in, n_rows, kQK_K, [&](int64_t g, int64_t i, BlockQ4Kx8& p) {
    std::memset(p.scales_hi, 0, sizeof(p.scales_hi));
    for (int r = 0; r < 8; ++r) {
      const BlockQ4K& b = block_at<BlockQ4K>(src, rb, 8 * g + r, i);
      p.d[r] = b.d;
      p.dmin[r] = b.dmin;
      pack_k4_scales(b.scales, r, p.scales_lo, p.scales_hi);
      for (int j = 0; j < 8; ++j) {
        const uint8_t* q = b.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        uint8_t* out = p.qs + 128 * j + 4 * r;
        for (int qq = 0; qq < 4; ++qq) {
          for (int k = 0; k < 4; ++k) {
            out[32 * qq + k] = static_cast<uint8_t>(((q[4 * qq + k] >> shift) & 0xF) |
                                                    (((q[16 + 4 * qq + k] >> shift) & 0xF) << 4));
          }
        }
      }
    }
  });
}
void unpack_q4_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q4_K, n_in);
  for_each_packed<BlockQ4Kx8>(const_cast<void*>(src), n_in, n_rows, kQK_K,
                              [&](int64_t g, int64_t i, BlockQ4Kx8& p) {
                                uint8_t L[8][kQK_K];
                                unweave_nibbles(p.qs, L, [](int, int, int, NibbleSlot) { return 0; });
                                for (int r = 0; r < 8; ++r) {
                                  BlockQ4K& b = block_at<BlockQ4K>(dst, rb, 8 * g + r, i);
                                  b.d = p.d[r];
                                  b.dmin = p.dmin[r];
                                  unpack_k4_scales(p.scales_lo, p.scales_hi, r, b.scales);
                                  q4k_from_levels(L[r], b);
                                }
                              });
}

void repack_q5_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q5_K, n_in);
  for_each_packed<BlockQ5Kx8>(dst, n_in, n_rows, kQK_K, [&](int64_t g, int64_t i, BlockQ5Kx8& p) {
    std::memset(&p, 0, sizeof(p));
    uint8_t L[8][kQK_K];
    for (int r = 0; r < 8; ++r) {
      const BlockQ5K& b = block_at<BlockQ5K>(src, rb, 8 * g + r, i);
      p.d[r] = b.d;
      p.dmin[r] = b.dmin;
      pack_k4_scales(b.scales, r, p.scales_lo, p.scales_hi);
      q5k_levels(b, L[r]);
    }
    weave_nibbles(L, p.qs, [&](int j, int r, int k, NibbleSlot s, int hbit) {
      p.qh[32 * j + 4 * r + k] |= static_cast<uint8_t>(hbit << s.step);
    });
  });
}
void unpack_q5_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q5_K, n_in);
  for_each_packed<BlockQ5Kx8>(const_cast<void*>(src), n_in, n_rows, kQK_K,
                              [&](int64_t g, int64_t i, BlockQ5Kx8& p) {
                                uint8_t L[8][kQK_K];
                                unweave_nibbles(p.qs, L, [&](int j, int r, int k, NibbleSlot s) {
                                  return (p.qh[32 * j + 4 * r + k] >> s.step) & 1;
                                });
                                for (int r = 0; r < 8; ++r) {
                                  BlockQ5K& b = block_at<BlockQ5K>(dst, rb, 8 * g + r, i);
                                  b.d = p.d[r];
                                  b.dmin = p.dmin[r];
                                  unpack_k4_scales(p.scales_lo, p.scales_hi, r, b.scales);
                                  q5k_from_levels(L[r], b);
                                }
                              });
}

int q6_qh_index(int c, NibbleSlot s, int r, int k) { return 64 * c + 32 * (s.step / 4) + 4 * r + k; }

// Load-time hot path, as repack_q4_k: chunk c of the packed block is elements [32c, 32c + 32),
// which the file keeps in half c / 4, quarter c % 4 (ql nibble and qh bit pair).
void repack_q6_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q6_K, n_in);
  for_each_packed<BlockQ6Kx8>(dst, n_in, n_rows, kQK_K, [&](int64_t g, int64_t i, BlockQ6Kx8& p) {
    std::memset(p.qh, 0, sizeof(p.qh));
    for (int r = 0; r < 8; ++r) {
      const BlockQ6K& b = block_at<BlockQ6K>(src, rb, 8 * g + r, i);
      p.d[r] = b.d;
      for (int j = 0; j < 16; ++j) p.scales[j * 8 + r] = b.scales[j];
      for (int c = 0; c < 8; ++c) {
        const int half = c / 4, quarter = c % 4;
        const uint8_t* ql = b.ql + 64 * half + (quarter % 2 ? 32 : 0);
        const uint8_t* qh = b.qh + 32 * half;
        const int lshift = quarter < 2 ? 0 : 4, hshift = 2 * quarter;
        auto low4 = [&](int w) { return (ql[w] >> lshift) & 0xF; };
        auto high2 = [&](int w) { return (qh[w] >> hshift) & 3; };
        for (int qq = 0; qq < 4; ++qq) {
          for (int k = 0; k < 4; ++k) {
            const int w_lo = 4 * qq + k, w_hi = 16 + 4 * qq + k;
            p.ql[128 * c + 32 * qq + 4 * r + k] = static_cast<uint8_t>(low4(w_lo) | (low4(w_hi) << 4));
            p.qh[64 * c + 4 * r + k] |= static_cast<uint8_t>(high2(w_lo) << (2 * qq));
            p.qh[64 * c + 32 + 4 * r + k] |= static_cast<uint8_t>(high2(w_hi) << (2 * qq));
          }
        }
      }
    }
  });
}
void unpack_q6_k(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q6_K, n_in);
  for_each_packed<BlockQ6Kx8>(const_cast<void*>(src), n_in, n_rows, kQK_K,
                              [&](int64_t g, int64_t i, BlockQ6Kx8& p) {
                                uint8_t L[8][kQK_K];
                                unweave_nibbles(p.ql, L, [&](int c, int r, int k, NibbleSlot s) {
                                  return (p.qh[q6_qh_index(c, s, r, k)] >> (2 * (s.step % 4))) & 3;
                                });
                                for (int r = 0; r < 8; ++r) {
                                  BlockQ6K& b = block_at<BlockQ6K>(dst, rb, 8 * g + r, i);
                                  b.d = p.d[r];
                                  for (int j = 0; j < 16; ++j) b.scales[j] = p.scales[j * 8 + r];
                                  q6k_from_levels(L[r], b);
                                }
                              });
}

void repack_q8_0(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q8_0, n_in);
  for_each_packed<BlockQ8_0x8>(dst, n_in, n_rows, kQK8_0, [&](int64_t g, int64_t i, BlockQ8_0x8& p) {
    for (int r = 0; r < 8; ++r) {
      const BlockQ8_0& b = block_at<BlockQ8_0>(src, rb, 8 * g + r, i);
      p.d[r] = b.d;
      for (int e = 0; e < kQK8_0; ++e) p.qs[(e / 4) * 32 + 4 * r + e % 4] = b.qs[e];
    }
  });
}
void unpack_q8_0(const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  const int64_t rb = ggml_row_size(GgmlType::Q8_0, n_in);
  for_each_packed<BlockQ8_0x8>(const_cast<void*>(src), n_in, n_rows, kQK8_0,
                               [&](int64_t g, int64_t i, BlockQ8_0x8& p) {
                                 for (int r = 0; r < 8; ++r) {
                                   BlockQ8_0& b = block_at<BlockQ8_0>(dst, rb, 8 * g + r, i);
                                   b.d = p.d[r];
                                   for (int e = 0; e < kQK8_0; ++e)
                                     b.qs[e] = p.qs[(e / 4) * 32 + 4 * r + e % 4];
                                 }
                               });
}

using RepackFn = void (*)(const void*, int64_t, int64_t, void*);
struct Packer {
  GgmlType type;
  RepackFn pack;
  RepackFn unpack;
};
constexpr Packer kPackers[] = {
    {GgmlType::Q4_K, repack_q4_k, unpack_q4_k},
    {GgmlType::Q5_K, repack_q5_k, unpack_q5_k},
    {GgmlType::Q6_K, repack_q6_k, unpack_q6_k},
    {GgmlType::Q8_0, repack_q8_0, unpack_q8_0},
};

const Packer& packer(GgmlType type, int64_t n_in, int64_t n_rows) {
  for (const Packer& p : kPackers) {
    if (p.type != type) continue;
    POPPER_CHECK(n_rows % kPackRows == 0, "repack: ", n_rows, " rows is not a multiple of ", kPackRows);
    POPPER_CHECK(n_in % ggml_type_info(type).block_size == 0, "repack: n_in ", n_in);
    return p;
  }
  POPPER_CHECK(false, "repack: no x8 layout for ", ggml_type_name(type));
  return kPackers[0];
}

}  // namespace

bool has_packed_layout(GgmlType type) {
  for (const Packer& p : kPackers) {
    if (p.type == type) return true;
  }
  return false;
}

void repack_rows(GgmlType type, const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  packer(type, n_in, n_rows).pack(src, n_in, n_rows, dst);
}

void unpack_rows(GgmlType type, const void* src, int64_t n_in, int64_t n_rows, void* dst) {
  packer(type, n_in, n_rows).unpack(src, n_in, n_rows, dst);
}

}  // namespace popper::cpu
