#include "engine/eval/base_logits.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "engine/eval/scoring.h"

namespace popper::eval {
namespace {

// Bounds that keep a corrupt header from asking for absurd allocations: llama.cpp's own sizes
// are int32, and no real vocabulary or context is near these.
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxCtx = int64_t{1} << 24;

uint64_t chunk_bytes(int64_t n_ctx, int64_t n_vocab) {
  return static_cast<uint64_t>(scored_per_chunk(n_ctx)) * static_cast<uint64_t>(base_record_u16s(n_vocab)) *
         sizeof(uint16_t);
}

}  // namespace

bool is_base_logits_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[8] = {};
  const bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, kBaseLogitsMagic, 8) == 0;
  std::fclose(f);
  return ok;
}

BaseLogitsReader::~BaseLogitsReader() {
  if (f_ != nullptr) std::fclose(f_);
}

Result<std::unique_ptr<BaseLogitsReader>> BaseLogitsReader::open(const std::string& path) {
  std::unique_ptr<BaseLogitsReader> r(new BaseLogitsReader());
  r->path_ = path;
  r->f_ = std::fopen(path.c_str(), "rb");
  if (r->f_ == nullptr) return make_error(path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fileno(r->f_), &st) != 0) return make_error(path, ": cannot stat: ", std::strerror(errno));
  char magic[8];
  int32_t sizes[3];
  if (std::fread(magic, 1, 8, r->f_) != 8 || std::memcmp(magic, kBaseLogitsMagic, 8) != 0)
    return make_error(path, ": not a llama-perplexity base logits file (no \"_logits_\" magic)");
  if (std::fread(sizes, sizeof(int32_t), 3, r->f_) != 3) return make_error(path, ": header truncated");
  r->n_ctx_ = sizes[0];
  r->n_vocab_ = sizes[1];
  r->n_chunk_ = sizes[2];
  if (r->n_ctx_ < 3 || r->n_ctx_ > kMaxCtx)
    return make_error(path, ": n_ctx ", r->n_ctx_, " out of range [3, ", kMaxCtx, "]");
  if (r->n_vocab_ < 1 || r->n_vocab_ > kMaxVocab)
    return make_error(path, ": n_vocab ", r->n_vocab_, " out of range [1, ", kMaxVocab, "]");
  if (r->n_chunk_ < 1) return make_error(path, ": n_chunk ", r->n_chunk_, ": want >= 1");
  const uint64_t n_tokens = static_cast<uint64_t>(r->n_ctx_) * static_cast<uint64_t>(r->n_chunk_);
  const uint64_t want =
      20 + n_tokens * 4 + static_cast<uint64_t>(r->n_chunk_) * chunk_bytes(r->n_ctx_, r->n_vocab_);
  if (static_cast<uint64_t>(st.st_size) != want)
    return make_error(path, ": ", st.st_size, " bytes, but n_ctx ", r->n_ctx_, ", n_vocab ", r->n_vocab_,
                      ", n_chunk ", r->n_chunk_, " make ", want);
  r->tokens_.resize(static_cast<size_t>(n_tokens));
  if (std::fread(r->tokens_.data(), sizeof(int32_t), r->tokens_.size(), r->f_) != r->tokens_.size())
    return make_error(path, ": tokens truncated");
  for (size_t i = 0; i < r->tokens_.size(); ++i) {
    if (r->tokens_[i] < 0 || r->tokens_[i] >= r->n_vocab_)
      return make_error(path, ": token ", i, " is ", r->tokens_[i], ", outside the vocabulary of ",
                        r->n_vocab_);
  }
  return r;
}

Status BaseLogitsReader::read_chunk(std::vector<uint16_t>& records) {
  if (chunks_read_ >= n_chunk_) return make_error(path_, ": read past the last of ", n_chunk_, " chunks");
  records.resize(chunk_bytes(n_ctx_, n_vocab_) / sizeof(uint16_t));
  if (std::fread(records.data(), sizeof(uint16_t), records.size(), f_) != records.size())
    return make_error(path_, ": chunk ", chunks_read_, " truncated");
  ++chunks_read_;
  return Status::success();
}

Result<std::unique_ptr<BaseLogitsWriter>> BaseLogitsWriter::open(const std::string& path, int64_t n_ctx,
                                                                 int64_t n_vocab, int64_t n_chunk,
                                                                 std::span<const int32_t> tokens) {
  POPPER_CHECK(static_cast<int64_t>(tokens.size()) == n_ctx * n_chunk, "tokens for ", n_chunk, " chunks");
  auto out = AtomicFileWriter::open(path);
  if (!out.ok()) return out.error();
  std::unique_ptr<BaseLogitsWriter> w(new BaseLogitsWriter());
  w->out_ = std::move(*out);
  w->n_ctx_ = n_ctx;
  w->n_vocab_ = n_vocab;
  w->n_chunk_ = n_chunk;
  const int32_t sizes[3] = {static_cast<int32_t>(n_ctx), static_cast<int32_t>(n_vocab),
                            static_cast<int32_t>(n_chunk)};
  POPPER_RETURN_IF_ERROR(w->out_->append(kBaseLogitsMagic, 8));
  POPPER_RETURN_IF_ERROR(w->out_->append(sizes, sizeof sizes));
  POPPER_RETURN_IF_ERROR(w->out_->append(tokens.data(), tokens.size_bytes()));
  return w;
}

Status BaseLogitsWriter::append_chunk(std::span<const uint16_t> records) {
  POPPER_CHECK(records.size_bytes() == chunk_bytes(n_ctx_, n_vocab_), "chunk record size");
  POPPER_CHECK(chunks_written_ < n_chunk_, "more chunks than announced");
  ++chunks_written_;
  return out_->append(records.data(), records.size_bytes());
}

Status BaseLogitsWriter::commit() {
  if (chunks_written_ != n_chunk_)
    return make_error(out_->path(), ": ", chunks_written_, " of ", n_chunk_, " chunks written");
  return out_->commit();
}

}  // namespace popper::eval
