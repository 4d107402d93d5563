#include "harness/report/markup_escape.h"

namespace popper::harness {

std::string markup_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r')
          out += '?';
        else
          out += static_cast<char>(ch);
    }
  }
  return out;
}

std::string markdown_cell_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    if (ch == '|')
      out += "\\|";
    else if (ch == '\n')
      out += ' ';
    else
      out += ch;
  }
  return out;
}

}  // namespace popper::harness
