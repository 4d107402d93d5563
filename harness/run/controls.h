// Negative controls (`popper run --controls`): after an item's own run, its check runs again with
// the item's control faults switched on in the engine (POPPER_FAULTS, engine/core/faults.h). The
// control must come out falsified: that is what shows the check can fail at all. A control that
// survives makes the item unfalsifiable whatever its own verdict, and the gate fails it.
//
// A control runs only for an item that survived: a falsified or errored item fails the gate
// already, and an inconclusive one claims nothing, so there is no survived verdict to guard. It
// runs the item's filter (or the control's narrower one) with --gtest_fail_fast: one
// counterexample is all a control needs, which keeps controls cheap.
#pragma once

#include "harness/contract/contract.h"
#include "harness/run/runner.h"

namespace popper::harness {

// The control of `item` given its own result. No control declared: nullopt. Declared but not
// needed (the item did not survive): ran = false, with the reason.
std::optional<ControlResult> run_control(const Contract& contract, const Item& item, const ItemResult& own,
                                         const RunOptions& opts);

// "falsified" / "survived -> unfalsifiable" ... for one line of text.
std::string control_summary(const ControlResult& c);

}  // namespace popper::harness
