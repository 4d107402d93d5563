// The gate's decision (evidence/gate.h) for CI systems: a JUnit XML file (one testsuite per
// contract, one testcase per item) and a Markdown summary for a pull-request comment.
#pragma once

#include <string>

#include "harness/evidence/gate.h"

namespace popper::harness {

// "6/8 controls falsified": of a contract's items, how many showed their check can fail.
std::string sensitivity_text(const GateContract& c);

std::string render_junit(const GateReport& r);
std::string render_markdown(const GateReport& r);

}  // namespace popper::harness
