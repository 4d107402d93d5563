// The Markdown twin of the HTML report: the same tables, a sparkline in place of each chart.
#include <cmath>
#include <sstream>

#include "harness/report/format.h"
#include "harness/report/markup_escape.h"
#include "harness/report/report.h"
#include "harness/run/outputs.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace {

const char* icon(const std::string& v) {
  if (v == "survived") return "✅";
  if (v == "falsified") return "❌";
  if (v == "inconclusive") return "⚠️";
  if (v == "error") return "💥";
  return "·";
}

// ▁▂▃▄▅▆▇█ over the run medians.
std::string sparkline(const Series& s) {
  static const char* kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& p : s.points) lo = std::min(lo, p.median), hi = std::max(hi, p.median);
  std::string out;
  for (const auto& p : s.points) {
    int k = hi > lo ? static_cast<int>(std::lround((p.median - lo) / (hi - lo) * 7)) : 3;
    out += kBars[k];
  }
  return out;
}

// "✅ falsified (kv_stale_position)": the wanted outcome of a control.
std::string control_text(const ItemRow& row) {
  const RecordedControl& c = row.control;
  if (!c.present) return "—";
  const std::string faults = join(c.faults, ",");
  if (!c.ran) return "· not run (" + faults + ")";
  if (c.verdict == Verdict::kFalsified) return "✅ falsified (" + faults + ")";
  if (c.unfalsifiable()) return "❌ unfalsifiable (" + faults + ")";
  return std::string(icon(verdict_name(c.verdict))) + " " + verdict_name(c.verdict) + " (" + faults + ")";
}

std::string change_text(const SeriesChange& c) {
  return format_relative(c.relative) + " (p " + format_p(c.test.p) + ", δ " + fmt_num(c.test.cliffs_delta) +
         ")";
}

}  // namespace

std::string render_report_markdown(const Report& r) {
  std::ostringstream o;
  o << "# Popper evidence report\n\nGenerated " << r.generated_at << " from `" << r.evidence_dir << "`.\n\n";
  if (r.integrity_problems.empty())
    o << "Evidence integrity: " << r.files_verified << " files match their MANIFEST digests.\n\n";
  else {
    o << "**Evidence integrity: " << r.integrity_problems.size() << " problem(s)**\n\n";
    for (const auto& p : r.integrity_problems) o << "- " << p << "\n";
    o << "\n";
  }
  for (const auto& p : r.load_problems) o << "> " << p << "\n\n";
  o << "| survived | falsified | inconclusive | error |\n|---|---|---|---|\n";
  for (const char* v : {"survived", "falsified", "inconclusive", "error"}) {
    auto f = r.totals.find(v);
    o << "| " << (f == r.totals.end() ? 0 : f->second) << " ";
  }
  o << "|\n\n## Verdicts\n\n| Contract | Item | Verdict | Control | Latest figures vs thresholds | Since the "
       "previous run | Time |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const auto& c : r.contracts) {
    for (const auto& row : c.items) {
      std::string figs;
      for (const auto& t : row.thresholds) {
        figs += (figs.empty() ? "" : "; ") + t.value("metric", "") + " ";
        if (t.contains("point"))
          figs += t.value("statistic", "median") + " " + fmt_num(t.value("point", 0.0)) + " [" +
                  fmt_num(t.value("ci_low", 0.0)) + ", " + fmt_num(t.value("ci_high", 0.0)) + "]";
        figs += " " + t.value("op", "") + " " + fmt_num(t.value("value", 0.0)) + " " +
                icon(t.value("verdict", ""));
      }
      if (figs.empty()) figs = row.reason.size() > 120 ? row.reason.substr(0, 117) + "..." : row.reason;
      std::string changed;
      if (row.previous_verdict && *row.previous_verdict != row.verdict)
        changed = *row.previous_verdict + " → " + row.verdict;
      else if (!row.previous_verdict && c.runs.size() > 1)
        changed = "new item";
      for (size_t si : row.series) {
        const Series& s = c.series[si];
        if (s.change && s.change->kind != ChangeKind::kNone)
          changed += (changed.empty() ? "" : "; ") + std::string("**") + change_kind_name(s.change->kind) +
                     "** " + s.metric + " " + change_text(*s.change);
      }
      if (changed.empty()) changed = c.runs.size() > 1 ? "no change" : "first run";
      std::string verdict = std::string(icon(row.verdict)) + " " + row.verdict;
      if (!row.stale.empty()) verdict += " (" + row.stale + ")";
      o << "| " << markdown_cell_escape(c.name) << " | `" << row.id << "` "
        << markdown_cell_escape(row.description) << " | " << markdown_cell_escape(verdict) << " | "
        << markdown_cell_escape(control_text(row)) << " | " << markdown_cell_escape(figs) << " | "
        << markdown_cell_escape(changed) << " | "
        << (row.verdict == "not run" ? "" : format_duration(row.duration_s)) << " |\n";
    }
    if (c.items.empty())
      o << "| " << markdown_cell_escape(c.name) << " | | | | " << markdown_cell_escape(c.problem)
        << " | | |\n";
  }
  o << "\n## Changes since the previous run\n\nMann-Whitney U on raw repetitions, flagged at p < "
    << fmt_num(kRegressionAlpha) << " and a median move of at least " << fmt_num(kMinRelativeChange * 100)
    << "%.\n\n";
  std::ostringstream rows;
  for (const auto& c : r.contracts)
    for (const auto& s : c.series)
      if (s.change && s.change->kind != ChangeKind::kNone && !s.unstable)
        rows << "| " << change_kind_name(s.change->kind) << " | `" << s.item_id << "` | "
             << markdown_cell_escape(s.metric + " · " + s.source) << " | "
             << fmt_num(s.change->previous_median) << " → " << fmt_num(s.change->latest_median) << " | "
             << format_relative(s.change->relative) << " | " << fmt_num(s.change->test.u1) << " | "
             << format_p(s.change->test.p) << " | " << fmt_num(s.change->test.cliffs_delta) << " |\n";
  if (rows.str().empty())
    o << "No significant change.\n";
  else
    o << "| Change | Item | Series | Median | Δ | U | p | δ |\n|---|---|---|---|---|---|---|---|\n"
      << rows.str();
  o << "\n## Unstable benchmarks\n\nCoefficient of variation above " << fmt_num(kUnstableCv * 100)
    << "%.\n\n";
  std::ostringstream urows;
  for (const auto& c : r.contracts)
    for (const auto& s : c.series)
      if (s.unstable)
        urows << "| `" << s.item_id << "` | " << markdown_cell_escape(s.metric + " · " + s.source) << " | "
              << fmt_num(s.latest_cv * 100) << "% | " << fmt_num(s.points.back().median) << " | "
              << s.points.back().samples.size() << " |\n";
  if (urows.str().empty())
    o << "None.\n";
  else
    o << "| Item | Series | CV | Median | n |\n|---|---|---|---|---|\n" << urows.str();

  for (const auto& c : r.contracts) {
    o << "\n## " << c.name << " " << c.version << "\n\n";
    if (!c.problem.empty()) o << "> " << c.problem << "\n\n";
    if (c.controls_ran)
      o << "Sensitivity: " << c.controls_falsified << "/" << c.items.size() << " controls falsified\n\n";
    if (!c.series.empty()) {
      o << "| Item | Series | History | Latest median | n | CV |\n|---|---|---|---|---|---|\n";
      for (const auto& s : c.series)
        o << "| `" << s.item_id << "` | " << markdown_cell_escape(s.metric + " · " + s.source) << " | "
          << sparkline(s) << " | " << fmt_num(s.points.back().median) << " | "
          << s.points.back().samples.size() << " | "
          << (s.points.back().samples.size() >= kMinSamplesForCv ? fmt_num(s.latest_cv * 100) + "%" : "—")
          << " |\n";
      o << "\n";
    }
    if (!c.runs.empty()) {
      o << "| # | Started | Commit | Host | CPU | GPU | Models | Verdicts | File "
           "|\n|---|---|---|---|---|---|---|---|---|\n";
      for (size_t i = c.runs.size(); i-- > 0;) {
        const auto& run = c.runs[i];
        const auto host = run.provenance.value("host", nlohmann::json::object());
        std::string models, verdicts;
        for (const auto& [name, sha] : run.models)
          models += (models.empty() ? "" : ", ") + name + " " + sha.substr(0, 12);
        for (const auto& [v, n] : run.summary)
          if (n > 0) verdicts += (verdicts.empty() ? "" : ", ") + std::to_string(n) + " " + v;
        const auto& gpu = run.provenance.contains("gpu") ? run.provenance["gpu"] : nlohmann::json();
        o << "| " << i + 1 << " | " << run.started_at << " | `" << run.commit << "` | "
          << markdown_cell_escape(host.value("hostname", "")) << " | "
          << markdown_cell_escape(host.value("cpu_model", "")) << " | "
          << (gpu.is_object() ? markdown_cell_escape(gpu.value("name", "")) : "none") << " | "
          << markdown_cell_escape(models) << " | " << verdicts
          << (run.merged_note.empty() ? "" : " (" + run.merged_note + ")") << " | `" << run.path << "` |\n";
      }
    }
  }
  return o.str();
}

}  // namespace popper::harness
