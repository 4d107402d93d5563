// `popper validate`: the rules a set of contracts must follow beyond their types.
//
//  - IDs are FALSIFY-<NAME>_V<major>_<NNN>, NAME from the contract name, major from its version,
//    and unique across every contract validated together;
//  - versions are semver, metadata.version == version, status_history versions strictly
//    increase and end at the current version, dates are real and never go backwards,
//    metadata.created <= metadata.updated;
//  - every binding is well formed and resolves: the executable exists in the build directory
//    and its filter matches at least one test or benchmark (the binary is asked). An item with
//    `blocked_on` may bind a target that is not built yet (a note, not an error);
//  - thresholds name a metric, a known op and statistic, and a profile the binding defines;
//  - a control names faults of this build (engine/core/faults.h) and a control filter matches;
//    a bound item without a control is warned about: nothing shows its check can fail.
#pragma once

#include <string>
#include <vector>

#include "harness/contract/contract.h"

namespace popper::harness {

struct ValidateOptions {
  std::string build_dir;
  std::string repo_root;
  bool check_bindings = true;  // ask the executables (off: schema and versions only)
};

// Adds diagnostics for the cross-field and cross-contract rules; `contracts` were loaded
// without structural errors.
void validate_contracts(const std::vector<const Contract*>& contracts, const ValidateOptions& opts,
                        std::vector<Diagnostic>& diags);

}  // namespace popper::harness
