#include "engine/tokenizer/pre_tokenizer.h"

#include <cstdint>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/unicode_tables.h"

namespace popper {
namespace {

// One decoded character of the text: its code point (kInvalidCodePoint for a stray byte), its
// class and its byte offset.
struct Char {
  uint32_t cp;
  CharClass cls;
  uint32_t offset;
};

bool is_cr_or_lf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

uint32_t ascii_lower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

}  // namespace

void qwen2_pre_tokenize(std::string_view text, std::vector<std::string_view>& out) {
  // note: decoding once into a flat array keeps the rule checks below branch-light; a thread
  // local buffer avoids an allocation per call (the tokenizer calls this per text fragment).
  thread_local std::vector<Char> chars;
  chars.clear();
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = 0;
    const size_t len = utf8_next(text, pos, cp);
    const CharClass cls = cp == kInvalidCodePoint ? CharClass::kOther : char_class(cp);
    chars.push_back({cp, cls, static_cast<uint32_t>(pos)});
    pos += len;
  }
  const size_t n = chars.size();
  // Past the end a character has no class at all (not even "other"), like llama.cpp's
  // out-of-range position; the rules below only ask class questions through these helpers.
  const auto cls_is = [&](size_t i, CharClass c) { return i < n && chars[i].cls == c; };
  const auto byte_at = [&](size_t i) { return i < n ? chars[i].offset : static_cast<uint32_t>(text.size()); };

  size_t start = 0;
  const auto emit = [&](size_t end) {
    out.push_back(text.substr(byte_at(start), byte_at(end) - byte_at(start)));
    start = end;
  };

  while (start < n) {
    const size_t pos = start;
    const uint32_t cp = chars[pos].cp;
    const CharClass cls = chars[pos].cls;

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (cp == '\'' && pos + 1 < n) {
      const uint32_t c1 = ascii_lower(chars[pos + 1].cp);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(pos + 2);
        continue;
      }
      if (pos + 2 < n) {
        const uint32_t c2 = ascii_lower(chars[pos + 2].cp);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          emit(pos + 3);
          continue;
        }
      }
    }

    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!is_cr_or_lf(cp) && cls != CharClass::kNumber &&
        (cls == CharClass::kLetter || cls_is(pos + 1, CharClass::kLetter))) {
      size_t end = pos + 1;
      while (cls_is(end, CharClass::kLetter)) ++end;
      emit(end);
      continue;
    }

    // \p{N}
    if (cls == CharClass::kNumber) {
      emit(pos + 1);
      continue;
    }

    // ' '?[^\s\p{L}\p{N}]+[\r\n]*
    {
      const size_t first = (cp == ' ') ? pos + 1 : pos;
      const bool opens = (cp == ' ' && first >= n) || cls_is(first, CharClass::kOther);
      if (opens) {
        size_t end = first;
        while (cls_is(end, CharClass::kOther)) ++end;
        while (end < n && is_cr_or_lf(chars[end].cp)) ++end;
        emit(end);
        continue;
      }
    }

    // Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
    size_t run = 0;
    size_t last_newline_end = 0;
    while (cls_is(pos + run, CharClass::kWhitespace)) {
      if (is_cr_or_lf(chars[pos + run].cp)) last_newline_end = pos + run + 1;
      ++run;
    }
    if (last_newline_end > 0) {
      emit(last_newline_end);
    } else if (run > 1 && pos + run < n) {
      emit(pos + run - 1);  // leave the last space to prefix the next word
    } else if (run > 0) {
      emit(pos + run);
    } else {
      emit(pos + 1);  // nothing matched: the character stands alone
    }
  }
}

}  // namespace popper
