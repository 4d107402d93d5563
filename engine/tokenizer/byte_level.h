// GPT-2 byte-level encoding: every byte maps to one printable code point, so any byte string is
// a string of BPE symbols and tokens are stored as text ("Ġthe" is " the").
//
// The mapping (GPT-2's bytes_to_unicode, used unchanged by Qwen): the 188 printable bytes
// '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF map to themselves; the other 68 bytes, in
// increasing order, map to U+0100, U+0101, ... (so ' ' is U+0120 'Ġ' and '\n' is U+010A 'Ċ').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace popper {

// Code point standing for byte `b` in byte-level text.
uint32_t byte_to_codepoint(uint8_t b);
// The byte a byte-level code point stands for, or -1 when `cp` is not one of the 256.
int codepoint_to_byte(uint32_t cp);

// Appends the UTF-8 encoding of `cp` (cp <= 0x10FFFF).
void append_utf8(std::string& out, uint32_t cp);

// Returned by utf8_next for a byte that does not start a well-formed sequence.
inline constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;

// Decodes the sequence starting at s[pos] and returns its length in bytes (>= 1). The checks
// are structural (lead byte and continuation bytes), as in llama.cpp's decoder, so both agree on
// where sequences end; a malformed lead byte or a truncated sequence yields kInvalidCodePoint
// and length 1, so every byte of the input stays accounted for.
size_t utf8_next(std::string_view s, size_t pos, uint32_t& cp);

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence that more bytes
// could still complete (the streaming decoder holds the rest back).
size_t utf8_complete_prefix(std::string_view s);

// Raw bytes -> byte-level text ("a b" -> "aĠb").
std::string byte_level_encode(std::string_view bytes);
// Byte-level text -> raw bytes appended to `out`; false (out unspecified) when `text` holds a
// code point that is not one of the 256 byte symbols.
bool byte_level_decode(std::string_view text, std::string& out);

}  // namespace popper
