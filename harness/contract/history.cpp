#include "harness/contract/history.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace popper::harness {
namespace {

// Byte offset of each line start (line 1 at index 0).
std::vector<size_t> line_starts(const std::string& text) {
  std::vector<size_t> starts{0};
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') starts.push_back(i + 1);
  return starts;
}

std::string line_at(const std::string& text, const std::vector<size_t>& starts, int line) {
  size_t a = starts[line - 1];
  size_t b = static_cast<size_t>(line) < starts.size() ? starts[line] - 1 : text.size();
  return text.substr(a, b - a);
}

struct Edit {
  size_t offset;
  size_t length;  // bytes replaced (0 for an insertion)
  std::string text;
};

// The byte range of a scalar whose value starts at `pos`; keeps its quoting style.
Result<Edit> scalar_edit(const std::string& text, const std::vector<size_t>& starts, const std::string& file,
                         const char* field, SourcePos pos, const std::string& old_value,
                         const std::string& new_value) {
  if (pos.line <= 0 || static_cast<size_t>(pos.line) > starts.size())
    return make_error(file, ": ", field, ": cannot locate the value to update");
  size_t off = starts[pos.line - 1] + static_cast<size_t>(pos.col - 1);
  if (off >= text.size())
    return make_error(file, ":", pos.line, ": ", field, ": cannot locate the value to update");
  char q = text[off];
  if (q == '"' || q == '\'') {
    std::string want = std::string(1, q) + old_value + q;
    if (text.compare(off, want.size(), want) != 0)
      return make_error(file, ":", pos.line, ":", pos.col, ": ", field,
                        ": quoted value with escapes; edit it by hand");
    return Edit{off, want.size(), std::string(1, q) + new_value + q};
  }
  if (text.compare(off, old_value.size(), old_value) != 0)
    return make_error(file, ":", pos.line, ":", pos.col, ": ", field, ": the text there is not '", old_value,
                      "'");
  return Edit{off, old_value.size(), new_value};
}

size_t indent_of(const std::string& line) { return line.find_first_not_of(' '); }

bool is_blank_or_comment(const std::string& line) {
  size_t i = line.find_first_not_of(" \t\r");
  return i == std::string::npos || line[i] == '#';
}

std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump();
}  // JSON strings are YAML double-quoted scalars

}  // namespace

std::pair<std::string, std::string> bump_version(const std::string& current,
                                                 const std::map<std::string, Verdict>& previous,
                                                 const std::map<std::string, Verdict>& now) {
  SemVer v = parse_semver(current).value_or(SemVer{});
  bool changed = previous.empty() || previous != now;
  if (changed) {
    ++v.minor;
    v.patch = 0;
  } else {
    ++v.patch;
  }
  return {v.str(), changed ? "minor" : "patch"};
}

std::string history_summary(const std::map<std::string, Verdict>& verdicts, const std::string& key_figures) {
  int c[4] = {0, 0, 0, 0};
  for (const auto& [id, v] : verdicts) c[static_cast<int>(v)]++;
  std::string s = std::to_string(verdicts.size()) + " items: " + std::to_string(c[0]) + " survived, " +
                  std::to_string(c[1]) + " falsified, " + std::to_string(c[2]) + " inconclusive, " +
                  std::to_string(c[3]) + " error";
  if (!key_figures.empty()) s += "; " + key_figures;
  return s + " (popper run --record)";
}

Result<std::string> append_history_text(const Contract& c, const NewHistoryEntry& e) {
  const std::string& text = c.text;
  if (c.history.empty()) return make_error(c.path, ": status_history is empty; add a first entry by hand");
  auto starts = line_starts(text);
  const HistoryEntry& last = c.history.back();
  if (last.pos.line <= 0) return make_error(c.path, ": cannot locate the last status_history entry");
  std::string entry_line = line_at(text, starts, last.pos.line);
  // Block style: "<dash_indent>- <key>: ..." with the entry's keys at column last.pos.col.
  size_t key_col = static_cast<size_t>(last.pos.col - 1);
  size_t dash = entry_line.rfind('-', key_col);
  if (dash == std::string::npos || key_col > entry_line.size() || entry_line.find_first_not_of(' ') != dash)
    return make_error(c.path, ":", last.pos.line,
                      ": status_history must be a block list ('- version: ...') to be "
                      "appended to; flow style is not supported");
  // The last entry runs until the first content line indented at or left of its dash.
  int end_line = last.pos.line;
  for (int ln = last.pos.line + 1; ln <= static_cast<int>(starts.size()); ++ln) {
    std::string l = line_at(text, starts, ln);
    if (is_blank_or_comment(l)) continue;
    if (indent_of(l) <= dash) break;
    end_line = ln;
  }
  size_t insert_at = static_cast<size_t>(end_line) < starts.size() ? starts[end_line] : text.size();
  std::string pad_dash(dash, ' '), pad_key(key_col, ' ');
  std::string block;
  if (insert_at == text.size() && !text.empty() && text.back() != '\n') block += "\n";
  block += pad_dash + "-" + std::string(key_col - dash - 1, ' ') + "version: " + e.version + "\n";
  block += pad_key + "date: " + e.date + "\n";
  block += pad_key + "commit: " + quoted(e.commit) + "\n";
  block += pad_key + "summary: " + quoted(e.summary) + "\n";
  block += pad_key + "evidence: " + quoted(e.evidence) + "\n";

  std::vector<Edit> edits;
  for (auto [field, pos, old_v, new_v] :
       {std::tuple{"version", c.version_pos, c.version, e.version},
        std::tuple{"metadata.version", c.metadata.version_pos, c.metadata.version, e.version},
        std::tuple{"metadata.updated", c.metadata.updated_pos, c.metadata.updated, e.date}}) {
    auto ed = scalar_edit(text, starts, c.path, field, pos, old_v, new_v);
    if (!ed.ok()) return ed.error();
    edits.push_back(*ed);
  }
  edits.push_back({insert_at, 0, block});
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.offset > b.offset; });
  std::string out = text;
  for (const auto& ed : edits) out.replace(ed.offset, ed.length, ed.text);

  // Re-parse: the result must be a valid contract carrying exactly the new entry at the end.
  LoadedContract check = parse_contract(c.path, out);
  if (check.has_errors() || !check.contract) {
    std::string why = check.diagnostics.empty() ? "unparsable" : check.diagnostics.front().format();
    return make_error(c.path, ": appending to status_history would break the file (", why, "); not written");
  }
  const Contract& nc = *check.contract;
  if (nc.version != e.version || nc.metadata.version != e.version || nc.metadata.updated != e.date ||
      nc.history.size() != c.history.size() + 1 || nc.history.back().version != e.version ||
      nc.history.back().evidence != e.evidence)
    return make_error(c.path, ": appended status_history did not re-parse as intended; not written");
  return out;
}

}  // namespace popper::harness
