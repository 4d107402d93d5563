// A contract: versioned, falsifiable claims about the engine, each bound to an executable check.
//
// The format (documented in contracts/README.md, JSON Schema in contracts/contract.schema.json)
// keeps the seed shape — metadata, name, version, description, equations, falsification items,
// status_history — and adds one machine-readable `falsifier:` binding and one negative
// `control:` per item (binding.h).
// This file holds the in-memory form and the loader; the cross-field rules (ID format, versions,
// history order, bindings that resolve) live in validate.h.
//
// The loader never throws: yaml-cpp exceptions are caught here and come back as diagnostics
// with file:line:col. Unknown fields are kept (the file is never rewritten, only appended to)
// and reported as warnings.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/contract/binding.h"

namespace popper::harness {

enum class Severity { kError, kWarning, kNote };

// One message about a contract: "contracts/x.yaml:41:7: error: falsification[2].id: duplicate ...".
struct Diagnostic {
  Severity severity = Severity::kError;
  std::string file;
  SourcePos pos;
  std::string field;  // "falsification[2].id"; empty for file-level messages
  std::string message;

  std::string format() const;
};

struct Item {
  std::string id;
  std::string description;
  std::string test;
  std::string evidence;
  std::string prerequisite_status;
  std::string blocked_on;  // non-empty: the item waits on other work; not required by the gate
  std::string blocker_status;
  bool required = true;
  std::optional<Binding> falsifier;
  std::optional<Control> control;
  std::string text_sha256;  // of the item as written (its YAML node): part of a verdict's fingerprint
  nlohmann::json extra = nlohmann::json::object();  // unknown fields, kept verbatim
  SourcePos pos;
  SourcePos id_pos;
};

struct HistoryEntry {
  std::string version;
  std::string date;
  std::string pr;
  std::string commit;
  std::string summary;
  std::string evidence;
  SourcePos pos;
  SourcePos version_pos;
  SourcePos date_pos;
};

struct Metadata {
  std::string version;
  std::string created;
  std::string updated;
  std::string author;
  std::string description;
  std::vector<std::string> references;
  SourcePos pos;
  SourcePos version_pos;
  SourcePos updated_pos;
};

struct Contract {
  std::string path;           // as given (used in messages)
  std::string text;           // the exact bytes read
  std::string sha256;         // of `text`
  std::string claims_sha256;  // of the falsification section only (stays put when history grows)
  std::string name;
  std::string version;
  std::string description;
  Metadata metadata;
  std::vector<Item> items;
  std::vector<HistoryEntry> history;
  SourcePos name_pos;
  SourcePos version_pos;
  SourcePos history_pos;

  const Item* find_item(const std::string& id) const;
};

struct LoadedContract {
  std::optional<Contract> contract;  // absent when the file could not be read or parsed at all
  std::vector<Diagnostic> diagnostics;

  bool has_errors() const;
};

// Reads and type-checks one contract file. Structural problems (wrong types, missing fields,
// unknown fields) become diagnostics; the contract is returned whenever the YAML parsed.
LoadedContract load_contract(const std::string& path);
// Same, from text already in memory (`path` is used in messages).
LoadedContract parse_contract(const std::string& path, const std::string& text);

// "qwen3-moe-serve-dispatch-v1" -> "QWEN3_MOE_SERVE_DISPATCH" (the -v<N> suffix dropped).
std::string contract_id_stem(const std::string& name);

// Semantic versions: MAJOR.MINOR.PATCH, digits only, no leading zeros.
struct SemVer {
  int major = 0, minor = 0, patch = 0;
  auto operator<=>(const SemVer&) const = default;
  std::string str() const;
};
std::optional<SemVer> parse_semver(const std::string& s);

// YYYY-MM-DD with a real calendar date; returns days since 1970-01-01.
std::optional<long> parse_date(const std::string& s);

}  // namespace popper::harness
