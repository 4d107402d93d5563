// What a finished contract run leaves behind: its evidence file (with the shard block of a
// sharded run) and, with --record, a status_history entry in the contract (contract/history.h
// edits the text).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/run/plan.h"
#include "harness/run/runner.h"
#include "harness/run/session.h"

namespace popper::harness {

// The whole of --record for one contract: previous verdicts from the evidence named by the last
// recorded entry, version bump, summary with the key figures, append, atomic write of
// `c.path`. Returns the new version.
Result<std::string> record_run(const Contract& c, const std::vector<ItemResult>& items,
                               const std::string& commit, const std::string& evidence_path,
                               const std::string& repo_root);

// Where and how a run's contracts are written.
struct RecordSettings {
  std::string evidence_dir;
  std::string repo_root;          // paths shown relative to it
  nlohmann::json provenance;      // collect_provenance(), the same for every contract of a run
  bool record = false;            // --record: append status_history
  std::string commit;             // for --record
  const RunPlan* plan = nullptr;  // sharded runs: the shard block comes from it
  bool controls = false;          // --controls ran (for the closing summary)
};

struct RecordedRun {
  std::string evidence;          // path shown (relative to the repository root when below it)
  std::string recorded_version;  // --record: "1.1.0 (minor)"
  std::string evidence_error;    // why the evidence could not be written ("" when it was)
  std::string record_error;      // why --record failed
};

// Writes one contract's evidence and, with settings.record, its history entry.
RecordedRun record_contract_run(const PlannedContract& pc, const std::vector<ItemResult>& results,
                                const RunInfo& info, const RecordSettings& settings);

}  // namespace popper::harness
