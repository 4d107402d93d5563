#include "harness/report/gate_outputs.h"

#include <cstdio>
#include <sstream>

#include "harness/report/markup_escape.h"
#include "harness/run/outputs.h"

namespace popper::harness {
namespace {

const char* md_mark(Verdict v) {
  switch (v) {
    case Verdict::kSurvived:
      return "✅ survived";
    case Verdict::kFalsified:
      return "❌ falsified";
    case Verdict::kInconclusive:
      return "⚠️ inconclusive";
    case Verdict::kError:
      return "💥 error";
  }
  return "";
}

// "✅ falsified (kv_stale_position)": a falsified control is the good outcome.
std::string control_mark(const GateItem& i) {
  const RecordedControl& c = i.control;
  if (!c.present) return "—";
  const std::string faults = " (" + join(c.faults, ",") + ")";
  if (!c.ran) return "· not run" + faults;
  if (c.unfalsifiable()) return "❌ survived: unfalsifiable" + faults;
  if (c.verdict == Verdict::kFalsified) return "✅ falsified" + faults;
  return std::string(c.verdict == Verdict::kError ? "💥 " : "⚠️ ") + verdict_name(c.verdict) + faults;
}

}  // namespace

std::string sensitivity_text(const GateContract& c) {
  return std::to_string(c.controls_falsified) + "/" + std::to_string(c.items.size()) + " controls falsified";
}

std::string render_junit(const GateReport& r) {
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"popper gate\">\n";
  for (const auto& c : r.contracts) {
    int failures = 0, errors = 0, skipped = 0;
    double time = 0;
    for (const auto& i : c.items) {
      failures += i.verdict == Verdict::kFalsified || (i.verdict == Verdict::kSurvived && i.blocks);
      errors += i.verdict == Verdict::kError;
      skipped += i.verdict == Verdict::kInconclusive;
      time += i.duration_s;
    }
    if (!c.problem.empty()) ++errors;
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", time);
    out << "  <testsuite name=\"" << markup_escape(c.name) << "\" tests=\""
        << c.items.size() + (c.problem.empty() ? 0 : 1) << "\" failures=\"" << failures << "\" errors=\""
        << errors << "\" skipped=\"" << skipped << "\" time=\"" << t << "\">\n";
    out << "    <properties><property name=\"version\" value=\"" << markup_escape(c.version)
        << "\"/><property name=\"evidence\" value=\"" << markup_escape(c.evidence) << "\"/>";
    if (c.controls_ran) out << "<property name=\"sensitivity\" value=\"" << sensitivity_text(c) << "\"/>";
    out << "</properties>\n";
    if (!c.problem.empty())
      out << "    <testcase classname=\"" << markup_escape(c.name) << "\" name=\"evidence\"><error message=\""
          << markup_escape(c.problem) << "\"/></testcase>\n";
    for (const auto& i : c.items) {
      std::snprintf(t, sizeof t, "%.3f", i.duration_s);
      out << "    <testcase classname=\"" << markup_escape(c.name) << "\" name=\"" << markup_escape(i.id)
          << "\" time=\"" << t << "\">";
      if (i.control.present)
        out << "<properties><property name=\"control\" value=\"" << markup_escape(i.control.label())
            << "\"/><property name=\"control_faults\" value=\"" << markup_escape(join(i.control.faults, ","))
            << "\"/></properties>";
      std::string msg = markup_escape(i.reason);
      if (i.verdict == Verdict::kSurvived && i.blocks)
        out << "<failure message=\"" << markup_escape(i.blocked_by) << "\"/>";
      else if (i.verdict == Verdict::kFalsified)
        out << "<failure message=\"" << msg << "\"/>";
      else if (i.verdict == Verdict::kError)
        out << "<error message=\"" << msg << "\"/>";
      else if (i.verdict == Verdict::kInconclusive)
        out << "<skipped message=\"" << msg << "\"/>";
      out << "</testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
  return out.str();
}

std::string render_markdown(const GateReport& r) {
  std::ostringstream out;
  out << "## Popper gate: "
      << (r.exit_code == 0   ? "passed ✅"
          : r.exit_code == 1 ? "failed ❌"
                             : "harness error 💥")
      << "\n\n";
  if (!r.harness_error.empty()) out << "> " << markdown_cell_escape(r.harness_error) << "\n\n";
  for (const auto& c : r.contracts) {
    out << "### " << c.name << " " << c.version << "\n\n";
    if (!c.evidence.empty()) out << "Evidence: `" << c.evidence << "`\n\n";
    if (!c.problem.empty()) out << "> ❌ " << markdown_cell_escape(c.problem) << "\n\n";
    // The control column when the evidence has controls (popper run --controls).
    if (c.controls_ran)
      out << "Sensitivity: " << sensitivity_text(c) << "\n\n"
          << "| Item | Verdict | Control | Required | Reason |\n|---|---|---|---|---|\n";
    else
      out << "| Item | Verdict | Required | Reason |\n|---|---|---|---|\n";
    for (const auto& i : c.items)
      out << "| `" << i.id << "` | " << md_mark(i.verdict) << " | "
          << (c.controls_ran ? control_mark(i) + " | " : "") << (i.required ? "yes" : "no") << " | "
          << markdown_cell_escape(i.blocked_by.empty() ? i.reason : i.blocked_by + " (" + i.reason + ")")
          << " |\n";
    out << "\n";
  }
  return out.str();
}

}  // namespace popper::harness
