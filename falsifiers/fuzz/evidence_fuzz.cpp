// Fuzz target: the evidence readers (harness/evidence/evidence.h): `popper verify-evidence`
// (MANIFEST lines, digests, schema), the newest-file lookup, recorded controls and durations.
//
// Input: an evidence directory as an archive (fuzz_archive.h).
// Properties: every problem names the file it is about; nothing listed is counted twice; a
// directory that verifies clean stops verifying when any byte of any file it lists changes
// (what MANIFEST exists for); the newest evidence of a contract is one of its listed
// time-stamped files, and is a popper evidence document whenever it reads.
#include <set>

#include "falsifiers/fuzz/fuzz_archive.h"
#include "harness/evidence/evidence.h"

namespace popper::fuzz {
namespace {

// The paths MANIFEST lists, as verify_evidence reads them (well-formed lines only).
std::vector<std::string> listed_paths(const FileTree& files) {
  std::vector<std::string> out;
  auto m = files.find("MANIFEST");
  if (m == files.end()) return out;
  size_t start = 0;
  while (start < m->second.size()) {
    size_t end = m->second.find('\n', start);
    if (end == std::string::npos) end = m->second.size();
    const std::string line = m->second.substr(start, end - start);
    if (line.size() >= 67 && line.substr(64, 2) == "  ") out.push_back(line.substr(66));
    start = end + 1;
  }
  return out;
}

void check_contract_readers(const std::string& dir, const FileTree& files) {
  std::set<std::string> contracts;
  for (const auto& [rel, bytes] : files)
    if (auto slash = rel.find('/'); slash != std::string::npos) contracts.insert(rel.substr(0, slash));
  for (const auto& c : contracts) {
    const std::vector<std::string> names = harness::list_evidence(dir, c);
    for (const auto& n : names)
      fuzz_require(n.ends_with(".json") && n.rfind(c + "/", 0) == 0 && n[c.size() + 1] != '.',
                   "list_evidence gives the contract's visible .json files: " + n);
    auto latest = harness::latest_evidence(dir, c);
    if (!latest.ok() || !*latest) continue;
    const auto& le = **latest;
    fuzz_require(!names.empty() && le.path == names.back(), "the newest file is the last listed");
    fuzz_require(le.doc.is_object() && le.doc.value("schema", "") == "popper-evidence",
                 "the newest reads as evidence");
    const auto& items = le.doc.contains("items") ? le.doc["items"] : nlohmann::json::array();
    if (items.is_array())
      for (const auto& it : items) {
        const std::string label = harness::recorded_control(it).label();
        static const std::set<std::string> kLabels = {
            "", "not run", "survived (unfalsifiable)", "survived", "falsified", "inconclusive", "error"};
        fuzz_require(kLabels.count(label) == 1, "a control's label is a known one: " + label);
      }
  }
  harness::recorded_durations(dir, std::vector<std::string>(contracts.begin(), contracts.end()));
}

void evidence_one_input(Bytes data) {
  MaterializedTree tree(
      "evidence", parse_archive(std::string_view(reinterpret_cast<const char*>(data.data()), data.size())));
  const FileTree& files = tree.files();
  const harness::VerifyReport rep = harness::verify_evidence(tree.path());
  for (const auto& p : rep.problems)
    fuzz_require(p.find(tree.path()) != std::string::npos, "a problem names its file: " + p);
  const std::vector<std::string> listed = listed_paths(files);
  fuzz_require(rep.files_checked <= int(listed.size()), "each listed file is checked at most once");
  check_contract_readers(tree.path(), files);
  if (!rep.problems.empty()) return;
  for (const auto& rel : listed) {
    auto f = files.find(rel);
    if (f == files.end()) continue;  // listed under another spelling ("a//b"): read through the file system
    std::string changed = f->second.empty() ? "x" : f->second;
    if (!f->second.empty()) changed[changed.size() / 2] ^= 0x01;
    tree.write(rel, changed);
    fuzz_require(!harness::verify_evidence(tree.path()).problems.empty(),
                 "a changed byte in " + rel + " is caught");
    tree.write(rel, f->second);
  }
}

// Seeds: the report fixtures' evidence directory whole, and each of its files alone with its
// MANIFEST line (small inputs mutate faster).
int evidence_seeds(const std::string& dir) {
  const FileTree all = read_tree(source_dir() + "/falsifiers/fixtures/report/evidence");
  if (all.empty() || !all.count("MANIFEST")) return -1;
  if (!write_seed(dir, "whole", pack_archive(all))) return -1;
  int n = 1;
  const std::string& manifest = all.at("MANIFEST");
  for (const auto& [rel, bytes] : all) {
    if (rel == "MANIFEST") continue;
    const size_t at = manifest.find("  " + rel + "\n");
    if (at == std::string::npos || at < 64) continue;
    FileTree one{{"MANIFEST", manifest.substr(at - 64, 64 + 2 + rel.size() + 1)}, {rel, bytes}};
    if (!write_seed(dir, "one-" + std::to_string(n++), pack_archive(one))) return -1;
  }
  return n;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(evidence, popper::fuzz::evidence_one_input, popper::fuzz::evidence_seeds);
