// Text helpers for the server's output: UTF-8 repair for JSON, and stop strings found in a
// growing completion.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace popper::serve {

// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD, one per maximal subpart
// (Unicode's "substitution of maximal subparts", what Python's bytes.decode('utf-8', 'replace')
// does). JSON must be valid UTF-8; model output is bytes and may not be.
std::string sanitize_utf8(std::string_view text);

// Finds stop strings in a completion as it grows, and says how much of it is safe to emit.
//
//   StopMatcher m({"\n\n"});
//   m.append(piece);           // after each token
//   if (m.stopped()) ...       // text() is cut before the stop string
//   m.take_ready()             // the bytes that can no longer become part of a stop string
//
// Bytes that end the text and begin some stop string are held back until the next append
// settles them; finish() releases them.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  void append(std::string_view piece);
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }
  // Bytes not yet taken that are settled (all of them once stopped or finished).
  std::string take_ready();
  std::string finish();

 private:
  size_t held_back() const;  // length of the longest suffix of text_ that is a proper prefix of a stop
  std::vector<std::string> stops_;
  std::string text_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace popper::serve
