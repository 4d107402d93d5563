// The CPU backend's own weight object, and the one place where a file-layout WeightMatrix becomes
// it (prepare_weight). Everything the CPU ops read of a weight goes through PreparedWeight, so the
// layout the kernels see is decided here and nowhere else: the model binds names and shapes, the
// CPU backend decides layout and residency.
//
// Layouts. A matrix that is multiplied (WeightUse::kMatmul) and has an x8 layout (repack.h: Q4_K,
// Q5_K, Q6_K, Q8_0 with rows per expert a multiple of 8) is repacked at load into memory this
// weight owns (packed_buffer.h: huge-page aligned); the packed kernels (packed_matmul.h) give the
// same bits as the file layout's scalar reference. Every other weight is a view of the caller's
// bytes in the file's own layout (GGUF row order, ggml blocks, engine/quant/blocks.h): types with
// no x8 layout, the norms, and a weight that is also read one row at a time (WeightUse::kRowLookup:
// the token embedding, and the output matrix when tied to it). PrepareOptions::repack false keeps
// every weight in the file's layout: the reference path (the CPU backend sets it from
// POPPER_REPACK=0). matmul_rows below dispatches on the layout; the model never sees it.
//
// Memory. A view keeps the file's pages: they are the weights (RSS about the file size once every
// page has been read). A repacked copy replaces the view instead of adding to it: prepare reads the
// file's rows once and owns its bytes from then on (views_file() false). The CPU backend then
// reports the file's range as no longer needed and the model hands its pages back to the kernel
// (Model::weights_on through GgufFile::release_pages, a no-op for files read into memory), so RSS
// stays about the file size, not twice it. A view (views_file() true) keeps the pages: never
// release a range a PreparedWeight still views.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/core/result.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_buffer.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/repack.h"

namespace popper::cpu {

// What the model uses a tensor for; the layout may depend on it.
enum class WeightUse {
  kMatmul,     // multiplied by activation rows (projections, router, experts, output)
  kRowLookup,  // also read one row at a time (token_embd, and the output when tied to it)
  kNorm,       // an f32 vector scaling rows (the norms): [n_in], n_out 1
};

struct PrepareOptions {
  bool repack = true;          // false: every weight in the file's layout (the reference path)
  ThreadPool* pool = nullptr;  // repacks rows on these threads when given
};

class PreparedWeight {
 public:
  PreparedWeight() = default;
  PreparedWeight(PreparedWeight&&) noexcept = default;
  PreparedWeight& operator=(PreparedWeight&&) noexcept = default;
  // Not copyable: a repacked weight owns its bytes (use a pointer to share one).
  PreparedWeight(const PreparedWeight&) = delete;
  PreparedWeight& operator=(const PreparedWeight&) = delete;

  // The file's type and shape: [n_in, n_out] per expert, n_expert experts (1 for a matrix).
  GgmlType type() const { return rows_.type; }
  int64_t n_in() const { return rows_.n_in; }
  int64_t n_out() const { return n_out_; }
  int64_t n_expert() const { return n_expert_; }
  // Bytes one row occupies as stored (work is split by weight bytes).
  int64_t row_bytes() const { return rows_.row_bytes; }
  // True when this weight reads the caller's bytes in place (they must outlive it).
  bool views_file() const { return owned_.data() == nullptr; }

  // Expert e's rows in the file's layout ([n_in, n_out]): the reference path and row lookups (a
  // kRowLookup weight keeps this layout). Aborts on a repacked weight (its file bytes may be gone).
  WeightMatrix file_rows(int64_t e = 0) const;
  // Expert e's rows in the x8 layout; only when packed().
  bool packed() const { return packed_.data != nullptr; }
  PackedMatrix packed_rows(int64_t e = 0) const { return packed_.rows(e * n_out_, n_out_); }
  // Row ranges handed to matmul_rows start and end on multiples of this (8 when packed, else 1).
  int64_t row_align() const { return packed() ? kPackRows : 1; }
  // A kNorm weight's values: [n_in] f32.
  const float* norm_values() const;

 private:
  friend Result<PreparedWeight> prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use,
                                               const PrepareOptions& options);
  WeightMatrix rows_;  // all n_out * n_expert rows, in the file's layout (data null once repacked)
  int64_t n_out_ = 0;
  int64_t n_expert_ = 1;
  PackedBuffer owned_;   // bytes this weight owns (a repacked copy); empty: a view
  PackedMatrix packed_;  // all rows in the x8 layout, in owned_; data null: the file's layout
};

// The CPU backend takes a tensor: `file` is all its rows in the file's layout ([n_in, n_out *
// n_expert]; n_expert 1 for a matrix or a norm, whose n_out is 1). A repacked copy or a view of
// `file`'s bytes (see the header). Error when the copy cannot be allocated (the message names the
// bytes). Aborts when n_out * n_expert does not divide file.n_out (a bug: the loader checked it).
Result<PreparedWeight> prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use,
                                      const PrepareOptions& options = {});

// True when prepare_weight would repack this tensor.
bool repacks(const WeightMatrix& file, int64_t n_expert, WeightUse use, const PrepareOptions& options);

// y[t * ldy + o] = dot(row o of expert `e` of w, x row t) for o in [row_begin, row_end), t < x.n_rows().
// x is in quant_traits(w.type())->vec_dot_type with w.n_in() columns. Single-threaded: the CPU ops
// split rows over threads themselves (project.h). The one entry the ops use to multiply by a
// prepared weight, so a repacked layout dispatches here.
void matmul_rows(const PreparedWeight& w, int64_t e, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end);

}  // namespace popper::cpu
