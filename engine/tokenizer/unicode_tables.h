// Unicode character classes for the Qwen2 pre-tokenizer, generated from unicodedata by
// scripts/gen_unicode_tables.py into unicode_tables.cpp (committed; rerun the script to update).
#pragma once

#include <cstdint>

namespace popper {

enum class CharClass : uint8_t {
  kOther = 0,       // punctuation, symbols, marks, controls, unassigned
  kLetter = 1,      // \p{L}
  kNumber = 2,      // \p{N}
  kWhitespace = 3,  // \s: the White_Space property
};

namespace unicode_tables {
inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;
extern const char kUnicodeVersion[];
extern const uint16_t kStage1[(kMaxCodePoint + 1) / 256];  // block -> stage-2 index
extern const uint8_t kStage2[][64];                        // 256 classes, 2 bits each
}  // namespace unicode_tables

// The class of a code point; values past U+10FFFF are kOther.
inline CharClass char_class(uint32_t cp) {
  if (cp > unicode_tables::kMaxCodePoint) return CharClass::kOther;
  const uint8_t packed = unicode_tables::kStage2[unicode_tables::kStage1[cp >> 8]][(cp & 0xFF) >> 2];
  return static_cast<CharClass>((packed >> (2 * (cp & 3))) & 3);
}

}  // namespace popper
