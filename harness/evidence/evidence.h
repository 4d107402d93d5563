// Evidence files: one JSON document per contract per run, at
// evidence/<contract>/<UTC time>-<short commit>.json (schema in evidence/README.md), written
// atomically, each listed with its sha256 in evidence/MANIFEST (append-only, `sha256sum -c`
// format) so any later edit is detectable with `popper verify-evidence`.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/run/runner.h"
#include "harness/run/session.h"

namespace popper::harness {

inline constexpr int kEvidenceSchemaVersion = 1;

nlohmann::json make_evidence(const Contract& c, const std::vector<ItemResult>& items,
                             const nlohmann::json& provenance, const RunInfo& run);

// Writes the document under <evidence_dir>/<contract>/ and appends its digest to the MANIFEST
// (under a lock, by atomic rewrite: a kill at any point leaves the old or the new MANIFEST).
// Returns the path relative to `evidence_dir`.
Result<std::string> write_evidence(const std::string& evidence_dir, const nlohmann::json& doc);

struct VerifyReport {
  int files_checked = 0;
  std::vector<std::string> problems;  // each names the file
};
// Every MANIFEST line's file exists and matches its digest; every evidence file is listed; every
// file parses as evidence of a known schema version.
VerifyReport verify_evidence(const std::string& evidence_dir);

// A contract's evidence files, paths relative to the evidence directory ("<contract>/<file>"),
// oldest first by their time-stamped names; hidden temp files are left out. Empty when none.
std::vector<std::string> list_evidence(const std::string& evidence_dir, const std::string& contract);

// The newest evidence file of a contract (by its time-stamped name), or nullopt when none.
struct LoadedEvidence {
  std::string path;  // relative to the evidence directory
  nlohmann::json doc;
};
Result<std::optional<LoadedEvidence>> latest_evidence(const std::string& evidence_dir,
                                                      const std::string& contract);

// Latest recorded duration_s of each item in the newest evidence file of each contract under
// `evidence_dir` (unreadable files are skipped: durations only steer the balance of shards,
// run/shard.h, not verdicts).
std::map<std::string, double> recorded_durations(const std::string& evidence_dir,
                                                 const std::vector<std::string>& contracts);

// An item's control as its evidence records it (the `control` block; absent before --controls).
struct RecordedControl {
  bool present = false;  // the evidence has a control block for the item
  bool ran = false;
  Verdict verdict = Verdict::kInconclusive;  // when ran
  std::string reason;
  std::vector<std::string> faults;
  double duration_s = 0;

  bool unfalsifiable() const { return ran && verdict == Verdict::kSurvived; }
  // "falsified", "survived (unfalsifiable)", "not run", "" when absent.
  std::string label() const;
};
RecordedControl recorded_control(const nlohmann::json& item);

// Reads and parses one evidence file.
Result<nlohmann::json> read_evidence(const std::string& path);

}  // namespace popper::harness
