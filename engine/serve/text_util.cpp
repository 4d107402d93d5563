#include "engine/serve/text_util.h"

#include <algorithm>
#include <cstdint>

namespace popper::serve {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at s[i], or the length of its maximal subpart
// (>= 1) negated when ill-formed. Table 3-7 of the Unicode standard.
int sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  int need = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;  // C0, C1, F5..FF, or a lone continuation byte
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return -k;  // truncated: the bytes so far are one maximal subpart
    const uint8_t x = b(i + k);
    const bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) return -k;
  }
  return need + 1;
}

}  // namespace

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const int n = sequence_length(text, i);
    if (n > 0) {
      out.append(text.substr(i, size_t(n)));
      i += size_t(n);
    } else {
      out.append(kReplacement);
      i += size_t(-n);
    }
  }
  return out;
}

void StopMatcher::append(std::string_view piece) {
  if (stopped_) return;
  const size_t old_size = text_.size();
  text_.append(piece);
  // A stop string can only newly appear if it ends inside the new piece.
  size_t best = std::string::npos;
  for (const std::string& stop : stops_) {
    if (stop.empty()) continue;
    const size_t from = old_size >= stop.size() ? old_size - stop.size() + 1 : 0;
    const size_t at = text_.find(stop, from);
    if (at != std::string::npos) best = std::min(best, at);
  }
  if (best != std::string::npos) {
    text_.resize(std::max(best, emitted_));
    stopped_ = true;
  }
}

size_t StopMatcher::held_back() const {
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    if (stop.empty()) continue;
    for (size_t k = std::min(stop.size() - 1, text_.size() - emitted_); k > hold; --k) {
      if (std::string_view(text_).substr(text_.size() - k) == std::string_view(stop).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

std::string StopMatcher::take_ready() {
  const size_t end = stopped_ ? text_.size() : text_.size() - held_back();
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return out;
}

std::string StopMatcher::finish() {
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace popper::serve
