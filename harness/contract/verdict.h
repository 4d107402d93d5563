// The four verdicts of a falsification item (HOUSE_STYLE "Errors"):
//   survived      the check ran and the claim held
//   falsified     the check ran and the claim failed (a failed assertion, a figure past its threshold)
//   inconclusive  the check could not decide (no GPU, no model, target not built, a skip, a CI
//                 that straddles the threshold) — never counted as survived
//   error         the check itself broke (crash, timeout, unparsable output, bad binding)
#pragma once

#include <optional>
#include <string>

namespace popper::harness {

enum class Verdict { kSurvived, kFalsified, kInconclusive, kError };

const char* verdict_name(Verdict v);
std::optional<Verdict> parse_verdict(const std::string& s);

// When sub-results of one item disagree, the strongest wins: falsified (a real counterexample)
// over error over inconclusive over survived.
Verdict combine_verdicts(Verdict a, Verdict b);

// A verdict decided from several findings: the strongest wins; findings of the same verdict
// keep their reasons together ("a; b"), a stronger one replaces them.
struct Outcome {
  Verdict verdict = Verdict::kSurvived;
  std::string reason;
  void add(Verdict v, const std::string& why);
};

}  // namespace popper::harness
