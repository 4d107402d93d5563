// Escaping for text placed in HTML, XML or Markdown tables (the report, JUnit files, the
// gate's pull-request summary).
#pragma once

#include <string>

namespace popper::harness {

// Escapes &, <, >, " and ' (as &#39;, valid in both HTML and XML) for text and attribute
// values, and replaces control characters other than tab, newline and carriage return with
// '?', since XML 1.0 forbids them and they carry nothing a reader could see.
std::string markup_escape(const std::string& s);

// Makes text safe inside one Markdown table cell: escapes | and turns newlines into spaces.
std::string markdown_cell_escape(const std::string& s);

}  // namespace popper::harness
