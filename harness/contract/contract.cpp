#include "harness/contract/contract.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <initializer_list>
#include <set>
#include <string_view>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"

namespace popper::harness {
namespace {

// Where `s` stops being YAML text: the offset of the first byte that does not start a
// well-formed UTF-8 sequence (RFC 3629: no overlong forms, surrogates or code points past
// U+10FFFF) or that starts a character YAML 1.2 does not allow in a stream (c-printable: tab,
// line ends, U+0020-U+007E, U+0085, U+00A0-U+D7FF, U+E000-U+FFFD, U+10000 and up); npos when
// there is none. Contracts must be such text: their strings go into evidence JSON, which holds
// only UTF-8 (nlohmann's dump throws on other bytes), and yaml-cpp turns a NUL into scalars that
// are not UTF-8. *cp_out is the code point found there, -1 when the sequence is ill-formed.
size_t first_non_yaml_char(std::string_view s, long* cp_out) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    *cp_out = -1;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const unsigned char d = s[i + k];
      if ((d >> 6) != 0x2) return i;
      cp = cp << 6 | (d & 0x3f);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    *cp_out = cp;
    const bool printable = cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0x7e) || cp == 0x85 ||
                           (cp >= 0xa0 && cp <= 0xfffd) || cp >= 0x10000;
    if (!printable) return i;
    i += n;
  }
  return std::string_view::npos;
}

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::kError:
      return "error";
    case Severity::kWarning:
      return "warning";
    case Severity::kNote:
      return "note";
  }
  return "error";
}

SourcePos pos_of(const YAML::Node& n) {
  if (!n.IsDefined()) return {};
  YAML::Mark m = n.Mark();
  if (m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

const char* type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

nlohmann::json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return n.Scalar();
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = to_json(kv.second);
      return o;
    }
    default:
      return nullptr;
  }
}

// Walks the YAML tree, filling the contract and collecting diagnostics. Every accessor checks
// the node type first, so no yaml-cpp conversion exception can escape.
class Reader {
 public:
  Reader(std::string file, std::vector<Diagnostic>& diags) : file_(std::move(file)), diags_(diags) {}

  void error(const YAML::Node& at, const std::string& field, const std::string& msg) {
    diags_.push_back({Severity::kError, file_, pos_of(at), field, msg});
  }
  void warn(const YAML::Node& at, const std::string& field, const std::string& msg) {
    diags_.push_back({Severity::kWarning, file_, pos_of(at), field, msg});
  }

  // Reports duplicate and unknown keys of a mapping; unknown ones are collected into `extra`.
  void check_keys(const YAML::Node& map, const std::string& field, std::initializer_list<const char*> known,
                  nlohmann::json* extra = nullptr) {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
      std::string where = field.empty() ? key : field + "." + key;
      if (!seen.insert(key).second) error(kv.first, where, "duplicate key '" + key + "'");
      bool is_known = std::any_of(known.begin(), known.end(), [&](const char* k) { return key == k; });
      if (!is_known) {
        warn(kv.first, where, "unknown field '" + key + "' (kept in the file, not used by popper)");
        if (extra) (*extra)[key] = to_json(kv.second);
      }
    }
  }

  // A string field. Absent -> "" (error when required). Non-scalar -> error.
  std::string str(const YAML::Node& map, const char* key, const std::string& field, bool required,
                  SourcePos* pos = nullptr) {
    YAML::Node n = map[key];
    std::string where = field.empty() ? key : field + "." + key;
    if (!n.IsDefined() || n.IsNull()) {
      if (required) error(map, where, "missing required field '" + std::string(key) + "'");
      return "";
    }
    if (!n.IsScalar()) {
      error(n, where, std::string("expected a string, found ") + type_name(n));
      return "";
    }
    if (pos) *pos = pos_of(n);
    return n.Scalar();
  }

  std::optional<double> number(const YAML::Node& n, const std::string& where) {
    if (!n.IsScalar()) {
      error(n, where, std::string("expected a number, found ") + type_name(n));
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    try {
      size_t used = 0;
      double v = std::stod(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    error(n, where, "expected a number, found '" + s + "'");
    return std::nullopt;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& where) {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    error(n, where, "expected true or false");
    return std::nullopt;
  }

  std::vector<std::string> str_list(const YAML::Node& n, const std::string& where) {
    std::vector<std::string> out;
    if (!n.IsSequence()) {
      error(n, where, std::string("expected a list of strings, found ") + type_name(n));
      return out;
    }
    int i = 0;
    for (const auto& e : n) {
      if (!e.IsScalar()) {
        error(e, where + "[" + std::to_string(i) + "]",
              std::string("expected a string, found ") + type_name(e));
      } else {
        out.push_back(e.Scalar());
      }
      ++i;
    }
    return out;
  }

  std::map<std::string, std::string> str_map(const YAML::Node& n, const std::string& where) {
    std::map<std::string, std::string> out;
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping of strings, found ") + type_name(n));
      return out;
    }
    for (const auto& kv : n) {
      if (!kv.second.IsScalar()) {
        error(kv.second, where + "." + kv.first.Scalar(), "expected a string");
        continue;
      }
      out[kv.first.Scalar()] = kv.second.Scalar();
    }
    return out;
  }

  Threshold threshold(const YAML::Node& n, const std::string& where) {
    Threshold t;
    t.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping {metric, op, value}, found ") + type_name(n));
      return t;
    }
    check_keys(n, where, {"metric", "op", "value", "statistic", "confidence", "profile"});
    t.metric = str(n, "metric", where, true);
    const std::string op = str(n, "op", where, true);
    if (auto parsed = parse_threshold_op(op))
      t.op = *parsed;
    else if (!op.empty())
      error(n["op"], where + ".op", "expected one of >=, >, <=, <; found '" + op + "'");
    if (n["value"].IsDefined()) {
      if (auto v = number(n["value"], where + ".value")) t.value = *v;
    } else {
      error(n, where + ".value", "missing required field 'value'");
    }
    if (n["statistic"].IsDefined()) {
      const std::string statistic = str(n, "statistic", where, false);
      if (auto parsed = parse_statistic(statistic))
        t.statistic = *parsed;
      else
        error(n["statistic"], where + ".statistic",
              "expected median, mean or exact; found '" + statistic + "'");
    }
    if (n["confidence"].IsDefined()) {
      if (auto c = number(n["confidence"], where + ".confidence")) {
        if (*c <= 0.5 || *c >= 1.0)
          error(n["confidence"], where + ".confidence", "expected a level in (0.5, 1), e.g. 0.95");
        else
          t.confidence = *c;
      }
    }
    t.profile = str(n, "profile", where, false);
    return t;
  }

  Profile profile(const YAML::Node& n, const std::string& where) {
    Profile p;
    p.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping {name, ...}, found ") + type_name(n));
      return p;
    }
    check_keys(n, where, {"name", "description", "model", "requires", "timeout_s", "repetitions", "env"});
    p.name = str(n, "name", where, true);
    p.description = str(n, "description", where, false);
    if (n["model"].IsDefined()) p.model = str(n, "model", where, false);
    if (n["requires"].IsDefined()) p.requires_ = str_list(n["requires"], where + ".requires");
    if (n["timeout_s"].IsDefined()) p.timeout_s = number(n["timeout_s"], where + ".timeout_s");
    if (n["repetitions"].IsDefined()) {
      if (auto r = number(n["repetitions"], where + ".repetitions")) p.repetitions = static_cast<int>(*r);
    }
    if (n["env"].IsDefined()) p.env = str_map(n["env"], where + ".env");
    return p;
  }

  Binding binding(const YAML::Node& n, const std::string& where) {
    Binding b;
    b.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping {kind, target, filter, ...}, found ") + type_name(n));
      return b;
    }
    check_keys(n, where,
               {"kind", "target", "filter", "command", "requires", "model", "timeout_s", "repetitions",
                "seed", "env", "thresholds", "profiles"});
    const std::string kind = str(n, "kind", where, true);
    b.kind = parse_binding_kind(kind);
    if (!b.kind && !kind.empty())
      error(n["kind"], where + ".kind", "expected gtest, benchmark or command; found '" + kind + "'");
    b.target =
        str(n, "target", where, b.is(BindingKind::kGtest) || b.is(BindingKind::kBenchmark), &b.target_pos);
    b.filter = str(n, "filter", where, false);
    if (n["command"].IsDefined()) b.command = str_list(n["command"], where + ".command");
    if (b.is(BindingKind::kCommand) && b.command.empty())
      error(n, where + ".command", "kind: command needs a command list");
    if (n["requires"].IsDefined()) b.requires_ = str_list(n["requires"], where + ".requires");
    b.model = str(n, "model", where, false);
    if (n["timeout_s"].IsDefined()) {
      if (auto v = number(n["timeout_s"], where + ".timeout_s")) {
        if (*v <= 0) error(n["timeout_s"], where + ".timeout_s", "expected a positive number of seconds");
        b.timeout_s = *v;
      }
    }
    if (auto r = repetitions(n, where)) b.repetitions = *r;
    if (n["seed"].IsDefined()) {
      if (auto v = number(n["seed"], where + ".seed")) {
        if (*v < 0 || *v != static_cast<double>(static_cast<uint64_t>(*v)))
          error(n["seed"], where + ".seed", "expected a non-negative whole number");
        else
          b.seed = static_cast<uint64_t>(*v);
      }
    }
    if (n["env"].IsDefined()) b.env = str_map(n["env"], where + ".env");
    if (n["thresholds"].IsDefined()) {
      const YAML::Node& ts = n["thresholds"];
      if (!ts.IsSequence()) {
        error(ts, where + ".thresholds", std::string("expected a list, found ") + type_name(ts));
      } else {
        int i = 0;
        for (const auto& t : ts)
          b.thresholds.push_back(threshold(t, where + ".thresholds[" + std::to_string(i++) + "]"));
      }
    }
    if (n["profiles"].IsDefined()) {
      const YAML::Node& ps = n["profiles"];
      if (!ps.IsSequence()) {
        error(ps, where + ".profiles", std::string("expected a list, found ") + type_name(ps));
      } else {
        int i = 0;
        for (const auto& p : ps)
          b.profiles.push_back(profile(p, where + ".profiles[" + std::to_string(i++) + "]"));
      }
    }
    return b;
  }

  // n.repetitions: a positive whole number (reported otherwise); nullopt when absent.
  std::optional<int> repetitions(const YAML::Node& n, const std::string& where) {
    if (!n["repetitions"].IsDefined()) return std::nullopt;
    auto v = number(n["repetitions"], where + ".repetitions");
    if (!v) return std::nullopt;
    if (*v < 1 || *v != static_cast<int>(*v))
      error(n["repetitions"], where + ".repetitions", "expected a positive whole number");
    return static_cast<int>(*v);
  }

  // `control: fault`, `control: [a, b]` or
  // `control: {faults: [a, b], filter: ..., repetitions: n, note: ...}`.
  Control control(const YAML::Node& n, const std::string& where) {
    Control c;
    c.pos = pos_of(n);
    if (n.IsScalar()) {
      c.faults.push_back(n.Scalar());
    } else if (n.IsSequence()) {
      c.faults = str_list(n, where);
      if (n.size() == 0) error(n, where, "names no fault");
    } else if (n.IsMap()) {
      check_keys(n, where, {"faults", "filter", "repetitions", "note"});
      if (n["faults"].IsDefined()) {
        const YAML::Node& f = n["faults"];
        c.faults = f.IsScalar() ? std::vector<std::string>{f.Scalar()} : str_list(f, where + ".faults");
        if (f.IsSequence() && f.size() == 0) error(f, where + ".faults", "names no fault");
      } else {
        error(n, where + ".faults", "missing required field 'faults'");
      }
      c.filter = str(n, "filter", where, false);
      c.repetitions = repetitions(n, where);
      c.note = str(n, "note", where, false);
    } else {
      error(n, where,
            std::string("expected a fault name, a list of them or a mapping {faults, filter, note}, found ") +
                type_name(n));
    }
    return c;
  }

  Item item(const YAML::Node& n, const std::string& where) {
    Item it;
    it.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping {id, description, ...}, found ") + type_name(n));
      return it;
    }
    check_keys(n, where,
               {"id", "description", "test", "evidence", "prerequisite_status", "blocked_on",
                "blocker_status", "required", "falsifier", "control"},
               &it.extra);
    it.text_sha256 = sha256_hex(to_json(n).dump());
    it.id = str(n, "id", where, true, &it.id_pos);
    it.description = str(n, "description", where, true);
    it.test = str(n, "test", where, false);
    it.evidence = str(n, "evidence", where, false);
    it.prerequisite_status = str(n, "prerequisite_status", where, false);
    it.blocked_on = str(n, "blocked_on", where, false);
    it.blocker_status = str(n, "blocker_status", where, false);
    if (n["required"].IsDefined()) {
      if (auto r = boolean(n["required"], where + ".required")) it.required = *r;
    }
    if (n["falsifier"].IsDefined()) it.falsifier = binding(n["falsifier"], where + ".falsifier");
    if (n["control"].IsDefined()) it.control = control(n["control"], where + ".control");
    return it;
  }

  HistoryEntry history_entry(const YAML::Node& n, const std::string& where) {
    HistoryEntry h;
    h.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, where, std::string("expected a mapping {version, date, summary}, found ") + type_name(n));
      return h;
    }
    check_keys(n, where, {"version", "date", "pr", "commit", "summary", "evidence"});
    h.version = str(n, "version", where, true, &h.version_pos);
    h.date = str(n, "date", where, true, &h.date_pos);
    h.pr = str(n, "pr", where, false);
    h.commit = str(n, "commit", where, false);
    h.summary = str(n, "summary", where, true);
    h.evidence = str(n, "evidence", where, false);
    return h;
  }

  void metadata(const YAML::Node& n, Metadata& m) {
    m.pos = pos_of(n);
    if (!n.IsMap()) {
      error(n, "metadata", std::string("expected a mapping, found ") + type_name(n));
      return;
    }
    check_keys(n, "metadata", {"version", "created", "updated", "author", "description", "references"});
    m.version = str(n, "version", "metadata", true, &m.version_pos);
    m.created = str(n, "created", "metadata", true);
    m.updated = str(n, "updated", "metadata", true, &m.updated_pos);
    m.author = str(n, "author", "metadata", false);
    m.description = str(n, "description", "metadata", false);
    if (n["references"].IsDefined()) m.references = str_list(n["references"], "metadata.references");
  }

  void contract(const YAML::Node& root, Contract& c) {
    if (!root.IsMap()) {
      error(root, "",
            std::string("a contract must be a YAML mapping at the top level, found ") + type_name(root));
      return;
    }
    check_keys(root, "",
               {"metadata", "name", "version", "scope", "description", "equations", "falsification",
                "implementation_phases", "scope_extension", "status_history"});
    if (root["metadata"].IsDefined())
      metadata(root["metadata"], c.metadata);
    else
      error(root, "metadata", "missing required field 'metadata'");
    c.name = str(root, "name", "", true, &c.name_pos);
    c.version = str(root, "version", "", true, &c.version_pos);
    c.description = str(root, "description", "", true);
    const YAML::Node& fs = root["falsification"];
    if (!fs.IsDefined()) {
      error(root, "falsification", "missing required field 'falsification'");
    } else if (!fs.IsSequence()) {
      error(fs, "falsification", std::string("expected a list of items, found ") + type_name(fs));
    } else {
      int i = 0;
      for (const auto& n : fs) c.items.push_back(item(n, "falsification[" + std::to_string(i++) + "]"));
      c.claims_sha256 = sha256_hex(to_json(fs).dump());
    }
    const YAML::Node& hs = root["status_history"];
    c.history_pos = pos_of(hs);
    if (!hs.IsDefined()) {
      error(root, "status_history", "missing required field 'status_history'");
    } else if (!hs.IsSequence()) {
      error(hs, "status_history", std::string("expected a list of entries, found ") + type_name(hs));
    } else {
      int i = 0;
      for (const auto& n : hs)
        c.history.push_back(history_entry(n, "status_history[" + std::to_string(i++) + "]"));
    }
  }

 private:
  std::string file_;
  std::vector<Diagnostic>& diags_;
};

}  // namespace

std::string Diagnostic::format() const {
  std::string out = file;
  if (pos.line > 0) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col);
  out += std::string(": ") + severity_name(severity) + ": ";
  if (!field.empty()) out += field + ": ";
  return out + message;
}

const Item* Contract::find_item(const std::string& id) const {
  for (const auto& it : items)
    if (it.id == id) return &it;
  return nullptr;
}

bool LoadedContract::has_errors() const {
  return !contract || std::any_of(diagnostics.begin(), diagnostics.end(),
                                  [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

LoadedContract parse_contract(const std::string& path, const std::string& text) {
  LoadedContract out;
  long cp = -1;
  if (size_t bad = first_non_yaml_char(text, &cp); bad != std::string_view::npos) {
    const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
    const int line = 1 + int(std::count(text.begin(), text.begin() + bad, '\n'));
    const int col = 1 + int(bad - (line_start == std::string::npos ? 0 : line_start + 1));
    char what[96];
    if (cp < 0)
      std::snprintf(what, sizeof what, "not UTF-8 text: an ill-formed sequence starts with byte 0x%02x",
                    static_cast<unsigned char>(text[bad]));
    else
      std::snprintf(what, sizeof what, "not YAML text: U+%04lX is not a character YAML allows", cp);
    out.diagnostics.push_back({Severity::kError, path, {line, col}, "", what});
    return out;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Diagnostic d{Severity::kError, path, {}, "", "invalid YAML: " + e.msg};
    if (e.mark.line >= 0) d.pos = {e.mark.line + 1, e.mark.column + 1};
    out.diagnostics.push_back(std::move(d));
    return out;
  }
  Contract c;
  c.path = path;
  c.text = text;
  c.sha256 = sha256_hex(text);
  try {
    Reader(path, out.diagnostics).contract(root, c);
  } catch (const YAML::Exception& e) {
    // Defensive: the reader checks types before converting, so this means a yaml-cpp surprise.
    out.diagnostics.push_back({Severity::kError, path, {e.mark.line + 1, e.mark.column + 1}, "", e.msg});
  }
  out.contract = std::move(c);
  return out;
}

LoadedContract load_contract(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) {
    LoadedContract out;
    out.diagnostics.push_back({Severity::kError, path, {}, "", text.message()});
    return out;
  }
  return parse_contract(path, *text);
}

std::string contract_id_stem(const std::string& name) {
  std::string base = name;
  auto dash = base.rfind("-v");
  if (dash != std::string::npos && dash + 2 < base.size() &&
      std::all_of(base.begin() + dash + 2, base.end(), [](unsigned char c) { return std::isdigit(c); }))
    base.resize(dash);
  for (auto& ch : base)
    ch = ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return base;
}

std::string SemVer::str() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::optional<SemVer> parse_semver(const std::string& s) {
  int parts[3];
  size_t i = 0;
  for (int k = 0; k < 3; ++k) {
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start || i - start > 9) return std::nullopt;
    if (i - start > 1 && s[start] == '0') return std::nullopt;
    parts[k] = std::stoi(s.substr(start, i - start));
    if (k < 2) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != s.size()) return std::nullopt;
  return SemVer{parts[0], parts[1], parts[2]};
}

std::optional<long> parse_date(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  int y = std::stoi(s.substr(0, 4)), m = std::stoi(s.substr(5, 2)), d = std::stoi(s.substr(8, 2));
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (m < 1 || m > 12 || d < 1) return std::nullopt;
  if (d > kDays[m - 1] + (m == 2 && leap ? 1 : 0)) return std::nullopt;
  // Days from civil (Howard Hinnant's algorithm).
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace popper::harness
