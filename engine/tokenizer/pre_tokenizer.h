// The Qwen2 pre-tokenizer (tokenizer.ggml.pre = "qwen2"): splits text into the words BPE runs
// on; no token ever crosses a word boundary.
//
// It implements, by hand, the split regex of Qwen2/Qwen3's tokenizer.json:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}
//   | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
// tried in that order at each position (leftmost-first alternation, greedy quantifiers), with the
// character classes of unicode_tables.h. A byte that is not part of well-formed UTF-8 counts as
// one "other" character (llama.cpp sees U+FFFD there, which is in the same class), so invalid
// input is split the way llama.cpp splits it and still keeps every byte.
#pragma once

#include <string_view>
#include <vector>

namespace popper {

// Appends the words of `text` to `out`, in order; they concatenate back to `text` exactly.
void qwen2_pre_tokenize(std::string_view text, std::vector<std::string_view>& out);

inline std::vector<std::string_view> qwen2_pre_tokenize(std::string_view text) {
  std::vector<std::string_view> out;
  qwen2_pre_tokenize(text, out);
  return out;
}

}  // namespace popper
