#include "harness/evidence/evidence.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Holds an flock on <dir>/.lock for the object's life (serializes MANIFEST updates between
// concurrent runs).
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    fd_ = ::open((fs::path(dir) / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

json control_json(const ControlResult& c) {
  json j = c.detail;
  j["faults"] = c.faults;
  if (!c.filter.empty()) j["filter"] = c.filter;
  j["ran"] = c.ran;
  j["reason"] = c.reason;
  if (c.ran) {
    j["verdict"] = verdict_name(c.verdict);
    j["unfalsifiable"] = c.unfalsifiable();
    j["started_at"] = c.started_at;
    j["finished_at"] = c.finished_at;
    j["duration_s"] = c.duration_s;
  }
  return j;
}

// The fields popper's readers take from an evidence file (status, gate, report, record,
// sign-off, shard durations), with the JSON type each must have where present. read_evidence
// checks them once, so a reader's json::value() cannot throw on a mistyped field of a file that
// parses (a control's "ran": "yes" used to end `popper status` in std::terminate).
// A path is "/"-separated; "*" stands for every element of an array.
enum class Want { kString, kBool, kNumber, kInteger, kObject, kArray, kStringOrNull };
struct FieldRule {
  const char* path;
  Want want;
};
constexpr FieldRule kEvidenceFields[] = {
    {"contract", Want::kObject},
    {"contract/name", Want::kString},
    {"contract/version", Want::kString},
    {"contract/path", Want::kString},
    {"contract/sha256", Want::kString},
    {"contract/claims_sha256", Want::kString},
    {"run", Want::kObject},
    {"run/started_at", Want::kString},
    {"run/finished_at", Want::kString},
    {"run/controls", Want::kBool},
    {"run/profile", Want::kStringOrNull},
    {"run/shard", Want::kObject},
    {"run/shard/index", Want::kInteger},
    {"run/shard/count", Want::kInteger},
    {"run/shard/plan_sha256", Want::kString},
    {"run/shard/contract_items", Want::kArray},
    {"provenance", Want::kObject},
    {"provenance/git", Want::kObject},
    {"provenance/git/commit", Want::kString},
    {"provenance/git/short_commit", Want::kString},
    {"provenance/git/dirty", Want::kBool},
    {"provenance/host", Want::kObject},
    {"items", Want::kArray},
    {"items/*", Want::kObject},
    {"items/*/id", Want::kString},
    {"items/*/verdict", Want::kString},
    {"items/*/reason", Want::kString},
    {"items/*/profile", Want::kString},
    {"items/*/required", Want::kBool},
    {"items/*/duration_s", Want::kNumber},
    {"items/*/thresholds", Want::kArray},
    {"items/*/thresholds/*", Want::kObject},
    {"items/*/control", Want::kObject},
    {"items/*/control/ran", Want::kBool},
    {"items/*/control/verdict", Want::kString},
    {"items/*/control/reason", Want::kString},
    {"items/*/control/duration_s", Want::kNumber},
    {"items/*/control/faults", Want::kArray},
    {"items/*/control/faults/*", Want::kString},
    {"summary", Want::kObject},
};

const char* want_name(Want w) {
  switch (w) {
    case Want::kString:
      return "a string";
    case Want::kBool:
      return "a boolean";
    case Want::kNumber:
      return "a number";
    case Want::kInteger:
      return "an integer";
    case Want::kObject:
      return "an object";
    case Want::kArray:
      return "an array";
    case Want::kStringOrNull:
      return "a string or null";
  }
  return "?";
}

bool has_type(const json& v, Want w) {
  switch (w) {
    case Want::kString:
      return v.is_string();
    case Want::kBool:
      return v.is_boolean();
    case Want::kNumber:
      return v.is_number();
    case Want::kInteger:
      return v.is_number_integer();
    case Want::kObject:
      return v.is_object();
    case Want::kArray:
      return v.is_array();
    case Want::kStringOrNull:
      return v.is_string() || v.is_null();
  }
  return false;
}

// The first value under `rest` (a rule's remaining path) of the wrong type, as
// "items[3].control.ran: want a boolean, got string"; nullopt when every one has the wanted type.
std::optional<std::string> mistyped(const json& v, std::string_view rest, const std::string& at, Want want) {
  if (rest.empty()) {
    if (has_type(v, want)) return std::nullopt;
    return at + ": want " + want_name(want) + ", got " + v.type_name();
  }
  const size_t slash = rest.find('/');
  const std::string_view head = rest.substr(0, slash);
  const std::string_view tail = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (head == "*") {
    if (!v.is_array()) return std::nullopt;  // its own rule reports a non-array
    for (size_t i = 0; i < v.size(); ++i)
      if (auto bad = mistyped(v[i], tail, at + "[" + std::to_string(i) + "]", want)) return bad;
    return std::nullopt;
  }
  if (!v.is_object()) return std::nullopt;
  auto it = v.find(std::string(head));
  if (it == v.end()) return std::nullopt;
  return mistyped(*it, tail, at.empty() ? std::string(head) : at + "." + std::string(head), want);
}

}  // namespace

json make_evidence(const Contract& c, const std::vector<ItemResult>& items, const json& provenance,
                   const RunInfo& run) {
  json doc;
  doc["schema"] = "popper-evidence";
  doc["schema_version"] = kEvidenceSchemaVersion;
  doc["contract"] = {{"name", c.name},
                     {"version", c.version},
                     {"path", c.path},
                     {"sha256", c.sha256},
                     {"claims_sha256", c.claims_sha256}};
  doc["run"] = {{"started_at", run.started_at},
                {"finished_at", run.finished_at},
                {"argv", run.argv},
                {"profile", run.profile ? json(*run.profile) : json(nullptr)},
                {"build_dir", run.build_dir},
                {"controls", run.controls}};
  doc["provenance"] = provenance;
  json arr = json::array();
  std::map<std::string, int> counts{{"survived", 0}, {"falsified", 0}, {"inconclusive", 0}, {"error", 0}};
  for (const auto& r : items) {
    json j = r.detail;
    j["id"] = r.id;
    j["description"] = r.description;
    j["required"] = r.required;
    j["verdict"] = verdict_name(r.verdict);
    j["reason"] = r.reason;
    j["profile"] = r.profile;
    j["started_at"] = r.started_at;
    j["finished_at"] = r.finished_at;
    j["duration_s"] = r.duration_s;
    if (const Item* it = c.find_item(r.id); it && !it->extra.empty()) j["extra_fields"] = it->extra;
    if (r.control) j["control"] = control_json(*r.control);
    arr.push_back(j);
    counts[verdict_name(r.verdict)]++;
  }
  doc["items"] = arr;
  doc["summary"] = counts;
  return doc;
}

Result<std::string> write_evidence(const std::string& evidence_dir, const json& doc) {
  std::error_code ec;
  const std::string name = doc["contract"]["name"].get<std::string>();
  fs::path dir = fs::path(evidence_dir) / name;
  fs::create_directories(dir, ec);
  if (ec) return make_error(dir.string(), ": cannot create the evidence directory: ", ec.message());
  DirLock lock(evidence_dir);
  if (!lock.ok()) return make_error(evidence_dir, ": cannot lock the evidence directory");

  // 20261125T224107Z-0123456789ab.json from the run's start time and commit.
  std::string stamp = doc["run"]["started_at"].get<std::string>();
  stamp.erase(std::remove_if(stamp.begin(), stamp.end(), [](char ch) { return ch == '-' || ch == ':'; }),
              stamp.end());
  std::string commit = doc["provenance"]["git"].value("short_commit", "");
  if (commit.empty()) commit = "nogit";
  if (doc["provenance"]["git"].value("dirty", false)) commit += "-dirty";
  std::string base = stamp + "-" + commit;
  fs::path file = dir / (base + ".json");
  for (int k = 2; fs::exists(file, ec); ++k) file = dir / (base + "-" + std::to_string(k) + ".json");

  std::string text = doc.dump(2) + "\n";
  Status st = write_file_atomic(file.string(), text);
  if (!st.ok()) return st.error();
  std::string rel = fs::relative(file, evidence_dir).string();
  std::string manifest_path = (fs::path(evidence_dir) / "MANIFEST").string();
  std::string manifest;
  if (fs::exists(manifest_path, ec)) {
    auto old = read_file(manifest_path);
    if (!old.ok()) return old.error();
    manifest = *old;
    if (!manifest.empty() && manifest.back() != '\n') manifest += '\n';
  }
  manifest += sha256_hex(text) + "  " + rel + "\n";
  st = write_file_atomic(manifest_path, manifest);
  if (!st.ok()) return st.error();
  return rel;
}

std::string RecordedControl::label() const {
  if (!present) return "";
  if (!ran) return "not run";
  if (unfalsifiable()) return "survived (unfalsifiable)";
  return verdict_name(verdict);
}

RecordedControl recorded_control(const json& item) {
  RecordedControl c;
  if (!item.is_object() || !item.contains("control") || !item["control"].is_object()) return c;
  const json& j = item["control"];
  c.present = true;
  c.ran = j.value("ran", false);
  c.verdict = parse_verdict(j.value("verdict", "")).value_or(Verdict::kError);
  c.reason = j.value("reason", "");
  c.duration_s = j.value("duration_s", 0.0);
  if (j.contains("faults") && j["faults"].is_array())
    for (const auto& f : j["faults"])
      if (f.is_string()) c.faults.push_back(f.get<std::string>());
  return c;
}

Result<json> read_evidence(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return text.error();
  try {
    json doc = json::parse(*text);
    if (!doc.is_object() || doc.value("schema", "") != "popper-evidence")
      return make_error(path, ": not a popper evidence file (no \"schema\": \"popper-evidence\")");
    if (doc.value("schema_version", 0) != kEvidenceSchemaVersion)
      return make_error(path, ": evidence schema_version ", doc.value("schema_version", 0),
                        ", this popper reads ", kEvidenceSchemaVersion);
    for (const FieldRule& r : kEvidenceFields) {
      if (auto bad = mistyped(doc, r.path, "", r.want)) {
        return make_error(path, ": ", *bad);
      }
    }
    return doc;
  } catch (const json::exception& e) {
    return make_error(path, ": invalid JSON: ", e.what());
  }
}

VerifyReport verify_evidence(const std::string& evidence_dir) {
  VerifyReport rep;
  std::error_code ec;
  std::string manifest_path = (fs::path(evidence_dir) / "MANIFEST").string();
  std::map<std::string, std::string> listed;  // rel path -> digest
  if (fs::exists(manifest_path, ec)) {
    auto text = read_file(manifest_path);
    if (!text.ok()) {
      rep.problems.push_back(text.message());
      return rep;
    }
    std::istringstream in(*text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      if (line.size() < 67 || line.substr(64, 2) != "  " ||
          line.substr(0, 64).find_first_not_of("0123456789abcdef") != std::string::npos) {
        rep.problems.push_back(manifest_path + ":" + std::to_string(n) +
                               ": malformed line (want '<sha256>  <path>')");
        continue;
      }
      std::string rel = line.substr(66);
      if (listed.count(rel))
        rep.problems.push_back(manifest_path + ":" + std::to_string(n) + ": " + rel + " listed twice");
      listed[rel] = line.substr(0, 64);
    }
    if (!text->empty() && text->back() != '\n')
      rep.problems.push_back(manifest_path + ": last line is incomplete");
  }
  for (const auto& [rel, digest] : listed) {
    std::string path = (fs::path(evidence_dir) / rel).string();
    auto text = read_file(path);
    if (!text.ok()) {
      rep.problems.push_back(path + ": listed in MANIFEST but cannot be read");
      continue;
    }
    ++rep.files_checked;
    std::string actual = sha256_hex(*text);
    if (actual != digest) {
      rep.problems.push_back(path + ": sha256 " + actual + " does not match MANIFEST " + digest +
                             " (file changed)");
      continue;
    }
    if (auto doc = read_evidence(path); !doc.ok()) rep.problems.push_back(doc.message());
  }
  if (fs::is_directory(evidence_dir, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(evidence_dir, ec)) {
      if (!e.is_regular_file() || e.path().extension() != ".json") continue;
      if (e.path().filename().string().rfind(".", 0) == 0) continue;  // a temp file of an interrupted write
      std::string rel = fs::relative(e.path(), evidence_dir).string();
      if (!listed.count(rel)) rep.problems.push_back(e.path().string() + ": not listed in MANIFEST");
    }
  }
  return rep;
}

std::vector<std::string> list_evidence(const std::string& evidence_dir, const std::string& contract) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(fs::path(evidence_dir) / contract, ec)) {
    std::string fn = e.path().filename().string();
    if (e.is_regular_file() && e.path().extension() == ".json" && fn[0] != '.') names.push_back(fn);
  }
  // Time-stamped stems sort chronologically; compare without ".json" so "<t>-c-2" follows "<t>-c".
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.substr(0, a.size() - 5) < b.substr(0, b.size() - 5);
  });
  for (auto& n : names) n = (fs::path(contract) / n).string();
  return names;
}

Result<std::optional<LoadedEvidence>> latest_evidence(const std::string& evidence_dir,
                                                      const std::string& contract) {
  std::vector<std::string> files = list_evidence(evidence_dir, contract);
  if (files.empty()) return std::optional<LoadedEvidence>();
  LoadedEvidence le;
  le.path = files.back();
  auto doc = read_evidence((fs::path(evidence_dir) / le.path).string());
  if (!doc.ok()) return doc.error();
  le.doc = std::move(*doc);
  return std::optional<LoadedEvidence>(std::move(le));
}

std::map<std::string, double> recorded_durations(const std::string& evidence_dir,
                                                 const std::vector<std::string>& contracts) {
  std::map<std::string, double> out;
  for (const auto& name : contracts) {
    auto le = latest_evidence(evidence_dir, name);
    if (!le.ok() || !*le) continue;
    const auto& items = (*le)->doc.value("items", nlohmann::json::array());
    for (const auto& it : items) {
      if (!it.is_object() || !it.contains("duration_s") || !it["duration_s"].is_number()) continue;
      out[it.value("id", "")] = it["duration_s"].get<double>();
    }
  }
  return out;
}

}  // namespace popper::harness
