// The CPU backend's own weight object, and the one place where a file-layout WeightMatrix becomes
// it (prepare_weight). Everything the CPU ops read of a weight goes through PreparedWeight, so the
// layout the kernels see is decided here and nowhere else: the model binds names and shapes, the
// CPU backend decides layout and residency.
//
// Layout today: the file's own (GGUF row order, ggml blocks, engine/quant/blocks.h), as a view of
// the caller's bytes (zero copy). A repacked layout (rows interleaved per type for register-blocked
// kernels, TODO(kernels): issue 12 item 2) is a change inside engine/cpu only: prepare_weight makes
// the copy into `owned_`, matmul_rows below dispatches on the layout, and the model never sees it.
// The file's layout stays available for a weight that is also read one row at a time
// (WeightUse::kRowLookup: the token embedding, and the output matrix when tied to it).
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

#include "engine/cpu/matmul.h"

namespace popper::cpu {

// What the model uses a tensor for; the layout may depend on it.
enum class WeightUse {
  kMatmul,     // multiplied by activation rows (projections, router, experts, output)
  kRowLookup,  // also read one row at a time (token_embd, and the output when tied to it)
  kNorm,       // an f32 vector scaling rows (the norms): [n_in], n_out 1
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
  bool views_file() const { return owned_ == nullptr; }

  // Expert e's rows in the file's layout ([n_in, n_out]): the reference path, row lookups (a
  // kRowLookup weight keeps this layout) and, today, every kernel.
  WeightMatrix file_rows(int64_t e = 0) const { return rows_.rows(e * n_out_, n_out_); }
  // A kNorm weight's values: [n_in] f32.
  const float* norm_values() const;

 private:
  friend PreparedWeight prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use);
  WeightMatrix rows_;  // all n_out * n_expert rows
  int64_t n_out_ = 0;
  int64_t n_expert_ = 1;
  std::unique_ptr<uint8_t[]> owned_;  // bytes this weight owns (a repacked copy); null: a view
};

// The CPU backend takes a tensor: `file` is all its rows in the file's layout ([n_in, n_out *
// n_expert]; n_expert 1 for a matrix or a norm, whose n_out is 1). Today a view of `file`'s bytes.
// Aborts when n_out * n_expert does not divide file.n_out (a bug: the loader checked the shape).
PreparedWeight prepare_weight(const WeightMatrix& file, int64_t n_expert, WeightUse use);

// y[t * ldy + o] = dot(row o of expert `e` of w, x row t) for o in [row_begin, row_end), t < x.n_rows().
// x is in quant_traits(w.type())->vec_dot_type with w.n_in() columns. Single-threaded: the CPU ops
// split rows over threads themselves (project.h). The one entry the ops use to multiply by a
// prepared weight, so a repacked layout dispatches here.
void matmul_rows(const PreparedWeight& w, int64_t e, const QuantizedActivations& x, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end);

}  // namespace popper::cpu
