// `popper gate`: turns the latest evidence of each contract into a CI decision.
//
// Exit 0 when every required item survived; 1 when any required item was falsified, errored or
// stayed inconclusive (unless --allow-inconclusive), or when the evidence is missing, stale (the
// contract's claims changed since) or from another commit; 2 on harness or input errors.
// Optional items (`required: false` or `blocked_on`) are reported but never fail the gate.
#pragma once

#include <string>
#include <vector>

#include "harness/contract/contract.h"
#include "harness/contract/verdict.h"

namespace popper::harness {

struct GateOptions {
  std::string evidence_dir;
  std::string head_commit;  // empty: do not check the commit
  bool allow_inconclusive = false;
};

struct GateItem {
  std::string id;
  std::string description;
  bool required = true;
  Verdict verdict = Verdict::kError;
  std::string reason;
  double duration_s = 0;
  bool blocks = false;  // this item makes the gate fail
};

struct GateContract {
  std::string name;
  std::string version;
  std::string evidence;  // path relative to the evidence dir
  std::string problem;   // missing / stale / other-commit evidence ("" when fine)
  std::vector<GateItem> items;
};

struct GateReport {
  std::vector<GateContract> contracts;
  int exit_code = 0;
  std::string harness_error;  // set when exit_code == 2
};

GateReport evaluate_gate(const std::vector<const Contract*>& contracts, const GateOptions& opts);

std::string render_junit(const GateReport& r);
std::string render_markdown(const GateReport& r);

}  // namespace popper::harness
