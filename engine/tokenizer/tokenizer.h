// Byte-level BPE tokenizer loaded from a GGUF (tokenizer.ggml.model = "gpt2", pre = "qwen2"),
// matching llama.cpp's tokenizer on the same vocabulary token for token.
//
// encode: the added tokens (control and user-defined types) are cut out of the text first,
// longest first, exactly as llama.cpp partitions it; each remaining piece is split by the Qwen2
// pre-tokenizer (pre_tokenizer.h); each word is byte-level encoded and merged by BPE: the
// adjacent pair with the lowest merge rank first, ties to the leftmost pair.
// decode: the exact bytes back, including bytes that are not valid UTF-8; StreamDecoder holds
// back a UTF-8 sequence cut by a token boundary until its last byte arrives.
//
// A Tokenizer is immutable after loading and safe to use from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/result.h"

namespace popper {

class GgufFile;
using TokenId = int32_t;

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model, pre, tokens, token_type, merges, eos/padding/bos_token_id}.
  // Errors name the key and entry: an unsupported model or pre value, a missing or mistyped key,
  // token_type / tokens length mismatch, a merge whose parts or result are not tokens, a normal
  // token whose text is not byte-level, a special id out of range.
  static Result<Tokenizer> from_gguf(const GgufFile& file);
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;
  // Copying ~150k strings is costly: spelled out rather than implicit.
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`. With parse_special, control tokens written in the text ("<|im_end|>")
  // become their ids; user-defined tokens ("<think>") always do, as in llama.cpp.
  std::vector<TokenId> encode(std::string_view text, bool parse_special = true) const;

  // The bytes of `ids` (each must satisfy valid_id: a caller bug otherwise). Control tokens
  // contribute their text when render_special, nothing otherwise; unused ids contribute nothing.
  std::string decode(std::span<const TokenId> ids, bool render_special = true) const;
  // The bytes of one token (what decode gives for it alone).
  const std::string& piece(TokenId id, bool render_special = true) const;

  bool valid_id(int64_t id) const { return id >= 0 && id < n_vocab(); }
  int64_t n_vocab() const { return static_cast<int64_t>(texts_.size()); }
  // Token text as stored in the GGUF (byte-level for normal tokens: "Ġthe").
  const std::string& token_text(TokenId id) const { return texts_[id]; }
  int32_t token_type(TokenId id) const { return types_[id]; }
  std::optional<TokenId> find_token(std::string_view text) const;
  const std::string& pre_tokenizer_name() const { return pre_; }
  int64_t n_merges() const { return n_merges_; }

  // Special ids from the metadata (nullopt when the key is absent).
  std::optional<TokenId> eos_id() const { return eos_; }
  std::optional<TokenId> pad_id() const { return pad_; }
  std::optional<TokenId> bos_id() const { return bos_; }

 private:
  struct Merge {
    int32_t rank;
    TokenId result;
  };
  struct MergeSlot {
    uint64_t key;  // left << 32 | right; kEmptyKey when free
    Merge merge;
  };
  struct Special {
    std::string text;
    TokenId id;
    bool control;  // control/unknown: matched only with parse_special
  };
  Tokenizer() = default;
  void encode_fragment(std::string_view text, std::vector<TokenId>& out,
                       std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>>& cache,
                       std::vector<TokenId>& cache_ids) const;
  void bpe_word(std::string_view word, std::vector<TokenId>& out) const;
  const Merge* find_merge(TokenId left, TokenId right) const;

  std::string pre_;
  std::vector<std::string> texts_;
  std::vector<int32_t> types_;
  std::vector<std::string> pieces_;          // decoded bytes of each token
  std::vector<std::string> special_pieces_;  // control tokens' text (render_special)
  // Text -> id: open addressing over ids (keys compared through texts_), load <= 1/2. note: a
  // node-based map spent most of the 151936-token load in allocation and pointer chasing.
  std::vector<uint64_t> id_slots_;  // hash tag << 32 | id; ~0 when free
  uint64_t id_mask_ = 0;
  void index_token(TokenId id);
  TokenId byte_token_[256] = {};
  // Open-addressing table of merges, linear probing, load <= 1/2. note: lookups are BPE's
  // inner loop; key and value share a 16-byte slot so a lookup costs one cache miss.
  std::vector<MergeSlot> merge_slots_;
  uint64_t merge_mask_ = 0;
  int64_t n_merges_ = 0;
  std::vector<Special> specials_;  // longest text first
  std::optional<TokenId> eos_, pad_, bos_;
};

// Incremental decoding for streaming: push() returns the bytes that are complete UTF-8 so far,
// holding back a sequence cut by a token boundary; finish() returns whatever is left (possibly
// invalid UTF-8, never dropped). Concatenating every push() and finish() equals decode(ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_special = true)
      : tokenizer_(&tokenizer), render_special_(render_special) {}
  std::string push(TokenId id);
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool render_special_;
  std::string pending_;
};

}  // namespace popper
