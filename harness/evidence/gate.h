// `popper gate`: turns the latest evidence of each contract into a CI decision.
//
// Exit 0 when every required item survived; 1 when any required item was falsified, errored or
// stayed inconclusive (unless --allow-inconclusive), when a survived item's control did not come
// out falsified (survived: the item is unfalsifiable; error; inconclusive unless allowed), with
// --require-controls when a survived item shows no control at all, with --fresh when an item's
// verdict is stale (run/fingerprint.h), or when the evidence is missing, stale (the contract's
// claims changed since) or from another commit; 2 on harness or input errors.
// Optional items (`required: false` or `blocked_on`) are reported but never fail the gate.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/contract/contract.h"
#include "harness/contract/verdict.h"
#include "harness/evidence/evidence.h"
#include "harness/run/fingerprint.h"

namespace popper::harness {

struct GateOptions {
  std::string evidence_dir;
  std::string head_commit;  // empty: do not check the commit
  bool allow_inconclusive = false;
  bool require_controls = false;  // a survived item must show a falsified control
  // --fresh: what would decide an item now; a verdict recorded under another fingerprint blocks.
  std::function<Fingerprint(const Item&)> fingerprint_now;
};

struct GateItem {
  std::string id;
  std::string description;
  bool required = true;
  Verdict verdict = Verdict::kError;
  std::string reason;
  double duration_s = 0;
  RecordedControl control;  // as the evidence records it (present = false without --controls)
  std::string stale;        // --fresh: why the verdict is stale ("" when fresh or not checked)
  bool blocks = false;      // this item makes the gate fail
  std::string blocked_by;   // why, when it is not the verdict itself: "unfalsifiable: ..."
};

struct GateContract {
  std::string name;
  std::string version;
  std::string evidence;  // path relative to the evidence dir
  std::string problem;   // missing / stale / other-commit evidence ("" when fine)
  std::vector<GateItem> items;
  bool controls_ran = false;   // the evidence comes from `popper run --controls`
  int controls_falsified = 0;  // sensitivity: controls_falsified / items.size()
};

struct GateReport {
  std::vector<GateContract> contracts;
  int exit_code = 0;
  std::string harness_error;  // set when exit_code == 2
};

GateReport evaluate_gate(const std::vector<const Contract*>& contracts, const GateOptions& opts);

}  // namespace popper::harness
