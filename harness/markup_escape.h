// Escaping for text placed in HTML or XML (the report, JUnit files).
#pragma once

#include <string>

namespace popper::harness {

// Escapes &, <, >, " and ' (as &#39;, valid in both HTML and XML) for text and attribute
// values, and replaces control characters other than tab, newline and carriage return with
// '?', since XML 1.0 forbids them and they carry nothing a reader could see.
std::string markup_escape(const std::string& s);

}  // namespace popper::harness
