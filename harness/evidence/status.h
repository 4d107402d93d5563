// `popper status`: for every item of the contracts, its latest recorded verdict and control, and
// whether that verdict still stands for what would run now (run/fingerprint.h) or is stale, with
// the reasons ("stale: falsifier rebuilt since", "stale: item text changed").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/evidence/evidence.h"
#include "harness/run/fingerprint.h"

namespace popper::harness {

struct StatusItem {
  std::string id;
  bool recorded = false;  // the latest evidence has the item
  std::string verdict;    // as recorded ("" when not)
  RecordedControl control;
  std::string profile;
  std::vector<std::string> stale;  // empty: fresh

  bool fresh() const { return recorded && stale.empty(); }
};

struct StatusContract {
  std::string name, version;
  std::string evidence;  // the latest evidence file, relative to the evidence directory
  std::string commit;    // it was produced from (12 hex, "-dirty" when the tree was)
  std::vector<StatusItem> items;
};

struct StatusReport {
  std::vector<StatusContract> contracts;
  int fresh = 0, stale = 0, unrecorded = 0;
};

// Errors: an unreadable evidence file.
Result<StatusReport> evaluate_status(const std::vector<const Contract*>& contracts,
                                     const std::string& evidence_dir,
                                     const std::function<Fingerprint(const Item&)>& fingerprint_now);

}  // namespace popper::harness
