// The base-model file of llama-perplexity's KL mode (--kl-divergence-base writes it,
// --kl-divergence reads it), so Popper and llama.cpp can each score against the other's base:
//
//   "_logits_"                      8 bytes
//   int32 n_ctx, int32 n_vocab, int32 n_chunk
//   int32 tokens[n_chunk * n_ctx]   the evaluated tokens (BOS not substituted)
//   per chunk, per scored position (n_ctx - 1 - n_ctx / 2 of them): one base record of
//   base_record_u16s(n_vocab) uint16 (engine/eval/scoring.h)
//
// Little-endian, as llama.cpp writes it on the machines it runs on.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/core/atomic_file.h"
#include "engine/core/result.h"

namespace popper::eval {

inline constexpr char kBaseLogitsMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};

// Positions scored per chunk of n_ctx tokens: the second half, less the last (it has no next).
inline int64_t scored_per_chunk(int64_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }

// True when the file at `path` starts with the magic (false when it cannot be read).
bool is_base_logits_file(const std::string& path);

class BaseLogitsReader {
 public:
  // Reads and checks the header and tokens: the magic, positive sizes, a file long enough for
  // every chunk. Errors name the file and the field.
  static Result<std::unique_ptr<BaseLogitsReader>> open(const std::string& path);
  ~BaseLogitsReader();

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_vocab() const { return n_vocab_; }
  int64_t n_chunk() const { return n_chunk_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // The next chunk's records: scored_per_chunk(n_ctx) * base_record_u16s(n_vocab) uint16.
  Status read_chunk(std::vector<uint16_t>& records);

 private:
  BaseLogitsReader() = default;
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t n_ctx_ = 0, n_vocab_ = 0, n_chunk_ = 0, chunks_read_ = 0;
  std::vector<int32_t> tokens_;
};

class BaseLogitsWriter {
 public:
  // Starts the file (atomically: it appears at `path` only on commit()). tokens: the first
  // n_chunk * n_ctx evaluated tokens.
  static Result<std::unique_ptr<BaseLogitsWriter>> open(const std::string& path, int64_t n_ctx,
                                                        int64_t n_vocab, int64_t n_chunk,
                                                        std::span<const int32_t> tokens);
  // One chunk's records, in order.
  Status append_chunk(std::span<const uint16_t> records);
  // Error unless every chunk was appended.
  Status commit();

 private:
  BaseLogitsWriter() = default;
  std::unique_ptr<AtomicFileWriter> out_;
  int64_t n_ctx_ = 0, n_vocab_ = 0, n_chunk_ = 0, chunks_written_ = 0;
};

}  // namespace popper::eval
