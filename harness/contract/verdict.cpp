#include "harness/contract/verdict.h"

namespace popper::harness {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kSurvived:
      return "survived";
    case Verdict::kFalsified:
      return "falsified";
    case Verdict::kInconclusive:
      return "inconclusive";
    case Verdict::kError:
      return "error";
  }
  return "error";
}

std::optional<Verdict> parse_verdict(const std::string& s) {
  for (Verdict v : {Verdict::kSurvived, Verdict::kFalsified, Verdict::kInconclusive, Verdict::kError})
    if (s == verdict_name(v)) return v;
  return std::nullopt;
}

Verdict combine_verdicts(Verdict a, Verdict b) {
  auto rank = [](Verdict v) {
    switch (v) {
      case Verdict::kFalsified:
        return 3;
      case Verdict::kError:
        return 2;
      case Verdict::kInconclusive:
        return 1;
      case Verdict::kSurvived:
        return 0;
    }
    return 2;
  };
  return rank(a) >= rank(b) ? a : b;
}

void Outcome::add(Verdict v, const std::string& why) {
  Verdict combined = combine_verdicts(verdict, v);
  if (v == verdict)
    reason += (reason.empty() ? "" : "; ") + why;  // same verdict: reasons accumulate
  else if (combined == v)
    reason = why;  // a stronger verdict takes over
  verdict = combined;
}

}  // namespace popper::harness
