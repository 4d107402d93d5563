// The HTML report: one file, inline CSS and SVG, a few lines of optional script (verdict filter);
// readable with scripts off and without any network.
#include <cmath>
#include <sstream>

#include "harness/report/format.h"
#include "harness/report/report.h"
#include "harness/report/svg.h"
#include "harness/run/outputs.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace {

const char* kCss = R"CSS(
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--bad:#cf222e;--bad-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;
--err:#8250df;--err-bg:#fbefff;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa;--ink:#1f2328;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--ink);background:#fff}
header{background:#24292f;color:#fff;padding:20px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#c9d1d9;font-size:13px;margin-top:4px}
main{padding:8px 32px 40px;max-width:1400px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:18px 0 4px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:110px;background:var(--bg);cursor:default}
.card .n{font-size:24px;font-weight:600}.card .l{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card[data-filter]{cursor:pointer}.card.sel{outline:2px solid var(--accent)}
.card.survived .n{color:var(--ok)}.card.falsified .n{color:var(--bad)}.card.inconclusive .n{color:var(--warn)}.card.error .n{color:var(--err)}
.card.regressions .n{color:var(--bad)}.card.unstable .n{color:var(--warn)}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600;position:sticky;top:0}
tr.contract-first td{border-top:2px solid #8c959f}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;white-space:nowrap}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.desc{color:var(--muted);font-size:12px}
.pill{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;white-space:nowrap}
.v-survived{color:var(--ok);background:var(--ok-bg)}.v-falsified{color:var(--bad);background:var(--bad-bg)}
.v-inconclusive{color:var(--warn);background:var(--warn-bg)}.v-error{color:var(--err);background:var(--err-bg)}
.v-not-run{color:var(--muted);background:var(--bg)}
.k-regression{color:var(--bad);font-weight:600}.k-improvement{color:var(--ok);font-weight:600}.k-changed{color:var(--accent);font-weight:600}
.fig{white-space:nowrap}.fig .m{font-family:ui-monospace,Menlo,monospace;font-size:12px}
.mark-survived{color:var(--ok)}.mark-falsified{color:var(--bad)}.mark-inconclusive{color:var(--warn)}.mark-error{color:var(--err)}
.banner{border-radius:6px;padding:8px 12px;margin:10px 0}
.banner.bad{background:var(--bad-bg);color:var(--bad)}.banner.ok{background:var(--ok-bg);color:var(--ok)}.banner.warn{background:var(--warn-bg);color:var(--warn)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fff}
figure.regression{border-color:var(--bad)}figure.unstable{border-color:#d4a72c}
figcaption{font-size:12px;color:var(--muted);margin-bottom:4px}figcaption b{color:var(--ink)}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}svg .tick{font-size:10px;fill:#57606a}
svg .sample{fill:#0969da;opacity:.28}svg .median{fill:none;stroke:#0969da;stroke-width:2}
svg .median-dot{fill:#0969da}svg .regressed{stroke:#cf222e;fill:#cf222e}
svg .threshold{stroke:#cf222e;stroke-dasharray:6 4;stroke-width:1.5}svg .threshold-label{font-size:11px;fill:#cf222e}
svg .fail-zone{fill:#cf222e;opacity:.05}
.stats{font-size:12px;color:var(--muted);margin-top:4px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
footer{color:var(--muted);font-size:12px;padding:16px 32px;border-top:1px solid var(--line)}
)CSS";

// Optional: clicking a verdict card filters the front table. The page is complete without it.
const char* kScript = R"JS(
(function(){
  var cards=document.querySelectorAll('[data-filter]');
  cards.forEach(function(c){c.addEventListener('click',function(){
    var v=c.getAttribute('data-filter'),on=!c.classList.contains('sel');
    cards.forEach(function(o){o.classList.remove('sel');});
    if(on)c.classList.add('sel');
    document.querySelectorAll('#front tbody tr').forEach(function(r){
      r.hidden=on&&r.getAttribute('data-verdict')!==v;});
  });});
  document.body.setAttribute('data-ready','1');
})();
)JS";

std::string esc(const std::string& s) { return markup_escape(s); }

std::string css_class(const std::string& verdict) {
  std::string c = verdict;
  for (char& ch : c)
    if (ch == ' ') ch = '-';
  return c;
}

std::string pill(const std::string& verdict) {
  return "<span class=\"pill v-" + css_class(verdict) + "\">" + esc(verdict) + "</span>";
}

std::string op_symbol(const std::string& op) {
  if (op == ">=") return "≥";
  if (op == "<=") return "≤";
  return op;
}

const char* mark(const std::string& verdict) {
  if (verdict == "survived") return "✓";
  if (verdict == "falsified") return "✗";
  if (verdict == "error") return "!";
  return "?";
}

std::string series_label(const Series& s) {
  return s.metric + (s.source.empty() ? "" : " · " + s.source) + (s.profile.empty() ? "" : " · " + s.profile);
}

std::string change_text(const SeriesChange& c) {
  std::ostringstream o;
  o << format_relative(c.relative) << " (p " << format_p(c.test.p) << ", δ " << fmt_num(c.test.cliffs_delta)
    << ")";
  return o.str();
}

// "tokens_per_second median 9.87 [9.61, 10.1] ≥ 5 ✓" per threshold; else the latest medians.
std::string figures_cell(const ContractReport& c, const ItemRow& row) {
  std::ostringstream o;
  for (const auto& t : row.thresholds) {
    std::string v = t.value("verdict", "error");
    o << "<div class=\"fig\"><span class=\"m\">" << esc(t.value("metric", "")) << "</span> ";
    if (t.contains("point")) {
      o << esc(t.value("statistic", "median")) << " <b>" << fmt_num(t.value("point", 0.0)) << "</b>";
      if (t.value("statistic", "") != "exact")
        o << " [" << fmt_num(t.value("ci_low", 0.0)) << ", " << fmt_num(t.value("ci_high", 0.0)) << "]";
    } else {
      o << esc(t.value("reason", ""));
    }
    o << " " << op_symbol(t.value("op", "")) << " " << fmt_num(t.value("value", 0.0))
      << " <span class=\"mark-" << esc(v) << "\">" << mark(v) << "</span></div>";
  }
  if (row.thresholds.empty()) {
    for (size_t si : row.series) {
      const Series& s = c.series[si];
      o << "<div class=\"fig\"><span class=\"m\">" << esc(s.metric) << "</span> median <b>"
        << fmt_num(s.points.back().median) << "</b> <span class=\"desc\">(no threshold)</span></div>";
    }
  }
  std::string r = row.reason.size() > 180 ? row.reason.substr(0, 177) + "..." : row.reason;
  o << "<div class=\"desc\">" << esc(r) << "</div>";
  return o.str();
}

std::string changed_cell(const ContractReport& c, const ItemRow& row) {
  std::ostringstream o;
  bool any = false;
  if (row.previous_verdict && *row.previous_verdict != row.verdict) {
    o << "<div>" << pill(*row.previous_verdict) << " → " << pill(row.verdict) << "</div>";
    any = true;
  } else if (!row.previous_verdict && c.runs.size() > 1) {
    o << "<div class=\"desc\">new item</div>";
    any = true;
  }
  for (size_t si : row.series) {
    const Series& s = c.series[si];
    if (!s.change || s.change->kind == ChangeKind::kNone) continue;
    o << "<div><span class=\"k-" << change_kind_name(s.change->kind) << "\">"
      << change_kind_name(s.change->kind) << "</span> <span class=\"m mono\">" << esc(s.metric) << "</span> "
      << change_text(*s.change) << "</div>";
    any = true;
  }
  if (!any) o << "<span class=\"desc\">" << (c.runs.size() > 1 ? "no change" : "first run") << "</span>";
  return o.str();
}

// A falsified control is the good outcome (the check can fail); a survived one is the bad one.
std::string control_cell(const ItemRow& row) {
  const RecordedControl& c = row.control;
  if (!c.present) return "<span class=\"desc\">—</span>";
  const std::string faults = join(c.faults, ", ");
  std::string pill_html;
  if (!c.ran)
    pill_html = "<span class=\"pill v-not-run\">not run</span>";
  else if (c.verdict == Verdict::kFalsified)
    pill_html = "<span class=\"pill v-survived\">falsified</span>";
  else if (c.unfalsifiable())
    pill_html = "<span class=\"pill v-falsified\">unfalsifiable</span>";
  else
    pill_html = pill(verdict_name(c.verdict));
  std::string r = c.reason.size() > 120 ? c.reason.substr(0, 117) + "..." : c.reason;
  return pill_html + "<div class=\"mono desc\">" + esc(faults) + "</div><div class=\"desc\">" + esc(r) +
         "</div>";
}

std::string sensitivity(const ContractReport& c) {
  return std::to_string(c.controls_falsified) + "/" + std::to_string(c.items.size()) + " controls falsified";
}

std::string anchor(const std::string& s) {
  std::string a;
  for (char ch : s) a += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '-';
  return a;
}

}  // namespace

std::string render_report_html(const Report& r) {
  std::ostringstream o;
  int items = 0, regressions = 0, unstable = 0;
  for (const auto& c : r.contracts) {
    items += static_cast<int>(c.items.size());
    for (const auto& s : c.series) {
      regressions += s.change && s.change->kind == ChangeKind::kRegression && !s.unstable;
      unstable += s.unstable;
    }
  }
  auto total = [&](const char* v) {
    auto f = r.totals.find(v);
    return f == r.totals.end() ? 0 : f->second;
  };
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    << "<title>Popper report</title><style>" << kCss << "</style></head><body>\n"
    << "<header><h1>Popper evidence report</h1><div class=\"sub\">generated " << esc(r.generated_at)
    << " from <code>" << esc(r.evidence_dir) << "</code> · " << r.contracts.size() << " contract"
    << (r.contracts.size() == 1 ? "" : "s") << " · " << items << " items</div></header>\n<main>\n";
  if (r.integrity_problems.empty())
    o << "<div class=\"banner ok\">Evidence integrity: " << r.files_verified
      << " files match their MANIFEST digests.</div>\n";
  else {
    o << "<div class=\"banner bad\"><b>Evidence integrity: " << r.integrity_problems.size()
      << " problem(s)</b> (popper verify-evidence)<ul>";
    for (const auto& p : r.integrity_problems) o << "<li>" << esc(p) << "</li>";
    o << "</ul></div>\n";
  }
  for (const auto& p : r.load_problems) o << "<div class=\"banner bad\">" << esc(p) << "</div>\n";

  o << "<div class=\"cards\">";
  for (const char* v : {"survived", "falsified", "inconclusive", "error"})
    o << "<div class=\"card " << v << "\" data-filter=\"" << v << "\" title=\"show only " << v
      << "\"><div class=\"n\">" << total(v) << "</div><div class=\"l\">" << v << "</div></div>";
  o << "<div class=\"card regressions\"><div class=\"n\">" << regressions
    << "</div><div class=\"l\">regressions</div></div><div class=\"card unstable\"><div class=\"n\">"
    << unstable << "</div><div class=\"l\">unstable</div></div></div>\n";

  // Front page: every item of every contract.
  o << "<h2>Verdicts</h2>\n<table id=\"front\"><thead><tr><th>Contract</th><th>Item</th><th>Verdict</th>"
       "<th>Control</th><th>Latest figures vs thresholds</th><th>Since the previous run</th><th "
       "class=\"num\">Time</th></tr></thead><tbody>\n";
  for (const auto& c : r.contracts) {
    bool first = true;
    for (const auto& row : c.items) {
      o << "<tr data-verdict=\"" << css_class(row.verdict) << "\""
        << (first ? " class=\"contract-first\"" : "") << ">";
      o << "<td>"
        << (first ? "<a href=\"#c-" + anchor(c.name) + "\">" + esc(c.name) + "</a><div class=\"desc\">" +
                        esc(c.version) + "</div>" +
                        (c.controls_ran ? "<div class=\"desc\">sensitivity " + sensitivity(c) + "</div>" : "")
                  : "")
        << "</td>";
      o << "<td class=\"id\">" << esc(row.id)
        << (row.required ? "" : " <span class=\"desc\">(optional)</span>")
        << "<div class=\"desc\" style=\"white-space:normal\">" << esc(row.description) << "</div></td>";
      o << "<td>" << pill(row.verdict)
        << (row.stale.empty() ? "" : "<div class=\"desc mark-inconclusive\">" + esc(row.stale) + "</div>")
        << "</td><td>" << control_cell(row) << "</td><td>" << figures_cell(c, row) << "</td><td>"
        << changed_cell(c, row) << "</td><td class=\"num\">"
        << (row.verdict == "not run" ? "" : format_duration(row.duration_s)) << "</td></tr>\n";
      first = false;
    }
    if (c.items.empty())
      o << "<tr class=\"contract-first\"><td>" << esc(c.name) << "</td><td colspan=\"6\" class=\"desc\">"
        << esc(c.problem) << "</td></tr>\n";
  }
  o << "</tbody></table>\n";

  // Significant changes of the latest run against the previous one.
  o << "<h2 id=\"regressions\">Changes since the previous run</h2>\n<p class=\"desc\">Mann-Whitney U on the "
       "raw "
       "repetitions of the latest run against the run before; flagged when p &lt; "
    << fmt_num(kRegressionAlpha) << " and the median moved at least " << fmt_num(kMinRelativeChange * 100)
    << "%. δ is Cliff's delta (−1..1, |δ| ≥ 0.47 is large). Unstable series are listed apart below.</p>\n";
  std::ostringstream rows;
  for (const auto& c : r.contracts)
    for (const auto& s : c.series) {
      if (!s.change || s.change->kind == ChangeKind::kNone || s.unstable) continue;
      const auto& ch = *s.change;
      rows << "<tr><td><span class=\"k-" << change_kind_name(ch.kind) << "\">" << change_kind_name(ch.kind)
           << "</span></td><td class=\"id\">" << esc(s.item_id) << "</td><td class=\"mono\">"
           << esc(series_label(s)) << "</td><td class=\"num\">" << fmt_num(ch.previous_median) << " → "
           << fmt_num(ch.latest_median) << "</td><td class=\"num\">" << format_relative(ch.relative)
           << "</td><td class=\"num\">" << fmt_num(ch.test.u1) << "</td><td class=\"num\">"
           << format_p(ch.test.p) << (ch.test.exact ? "" : " ≈") << "</td><td class=\"num\">"
           << fmt_num(ch.test.cliffs_delta) << "</td><td class=\"num\">" << ch.test.n2 << " / " << ch.test.n1
           << "</td></tr>\n";
    }
  if (rows.str().empty())
    o << "<p>No significant change.</p>\n";
  else
    o << "<table><thead><tr><th>Change</th><th>Item</th><th>Series</th><th class=\"num\">Median</th><th "
         "class=\"num\">"
         "Δ</th><th class=\"num\">U</th><th class=\"num\">p</th><th class=\"num\">δ</th><th class=\"num\">n "
         "prev / "
         "latest</th></tr></thead><tbody>\n"
      << rows.str() << "</tbody></table>\n";

  o << "<h2 id=\"unstable\">Unstable benchmarks</h2>\n<p class=\"desc\">Latest repetitions with a "
       "coefficient of "
       "variation above "
    << fmt_num(kUnstableCv * 100)
    << "%: their confidence intervals are wide and a change call on them means little.</p>\n";
  std::ostringstream urows;
  for (const auto& c : r.contracts)
    for (const auto& s : c.series) {
      if (!s.unstable) continue;
      urows << "<tr><td class=\"id\">" << esc(s.item_id) << "</td><td class=\"mono\">" << esc(series_label(s))
            << "</td><td class=\"num\">" << fmt_num(s.latest_cv * 100) << "%</td><td class=\"num\">"
            << fmt_num(s.points.back().median) << "</td><td class=\"num\">" << s.points.back().samples.size()
            << "</td><td>" << (s.change ? change_text(*s.change) : "—") << "</td></tr>\n";
    }
  if (urows.str().empty())
    o << "<p>None.</p>\n";
  else
    o << "<table><thead><tr><th>Item</th><th>Series</th><th class=\"num\">CV</th><th "
         "class=\"num\">Median</th>"
         "<th class=\"num\">n</th><th>vs previous</th></tr></thead><tbody>\n"
      << urows.str() << "</tbody></table>\n";

  // Per contract: history charts and provenance.
  for (const auto& c : r.contracts) {
    o << "<section class=\"contract\" id=\"c-" << anchor(c.name) << "\"><h2>" << esc(c.name)
      << " <span class=\"desc\">" << esc(c.version) << " · " << c.runs.size() << " run"
      << (c.runs.size() == 1 ? "" : "s") << "</span></h2>\n";
    if (!c.problem.empty()) o << "<div class=\"banner warn\">" << esc(c.problem) << "</div>\n";
    if (c.controls_ran)
      o << "<p>Sensitivity: <b>" << sensitivity(c)
        << "</b> <span class=\"desc\">(an item's control reruns its check with a deliberate engine fault; it "
           "must come out falsified)</span></p>\n";
    if (!c.runs.empty())
      o << "<p class=\"desc\">Latest evidence <code>" << esc(c.runs.back().path)
        << "</code> · claims sha256 <code>" << esc(c.claims_sha256.substr(0, 16)) << "…</code></p>\n";
    std::string last_item;
    bool open = false;
    for (const auto& s : c.series) {
      if (s.item_id != last_item) {
        if (open) o << "</div>\n";
        o << "<h3 class=\"mono\">" << esc(s.item_id) << "</h3><div class=\"charts\">\n";
        open = true;
        last_item = s.item_id;
      }
      std::vector<std::string> labels;
      for (const auto& p : s.points) labels.push_back(c.runs[p.run].commit.substr(0, 7));
      const char* cls = s.unstable                                              ? " class=\"unstable\""
                        : s.change && s.change->kind == ChangeKind::kRegression ? " class=\"regression\""
                                                                                : "";
      o << "<figure" << cls << "><figcaption><b>" << esc(series_label(s)) << "</b>";
      for (const auto& t : s.thresholds)
        o << " · threshold " << esc(t.statistic) << " " << op_symbol(t.op) << " " << fmt_num(t.value);
      o << "</figcaption>" << render_series_svg(s, labels) << "<div class=\"stats\">latest median "
        << fmt_num(s.points.back().median) << ", n=" << s.points.back().samples.size();
      if (s.points.back().samples.size() >= kMinSamplesForCv)
        o << ", CV " << fmt_num(s.latest_cv * 100) << "%";
      if (s.unstable) o << " <b class=\"mark-inconclusive\">unstable</b>";
      if (s.change)
        o << "; vs previous: <span class=\"k-" << change_kind_name(s.change->kind) << "\">"
          << change_kind_name(s.change->kind) << "</span> " << change_text(*s.change)
          << ", U=" << fmt_num(s.change->test.u1);
      o << "</div></figure>\n";
    }
    if (open) o << "</div>\n";
    if (!c.runs.empty()) {
      o << "<h3>Provenance</h3><table><thead><tr><th>#</th><th>Started</th><th>Commit</th><th>Profile</"
           "th><th>Host</th>"
           "<th>CPU</th><th>GPU</th><th>Models "
           "(sha256)</th><th>popper</th><th>Verdicts</th><th>File</th></tr></thead><tbody>\n";
      for (size_t i = c.runs.size(); i-- > 0;) {
        const ReportRun& run = c.runs[i];
        const auto& p = run.provenance;
        const auto host = p.value("host", nlohmann::json::object());
        const auto build = p.value("build", nlohmann::json::object());
        o << "<tr><td class=\"num\">" << i + 1 << "</td><td class=\"mono\">" << esc(run.started_at)
          << "</td><td class=\"mono\">" << esc(run.commit) << "</td><td>"
          << esc(run.profile.empty() ? "default" : run.profile) << "</td><td>"
          << esc(host.value("hostname", "")) << "<div class=\"desc\">" << esc(host.value("os", ""))
          << "</div></td><td>" << esc(host.value("cpu_model", "")) << "<div class=\"desc\">"
          << esc(host.value("simd_path", "")) << ", " << host.value("cores_usable", 0)
          << " cores</div></td><td>"
          << (p.contains("gpu") && p["gpu"].is_object() ? esc(p["gpu"].value("name", ""))
                                                        : "<span class=\"desc\">none</span>")
          << "</td><td>";
        for (const auto& [name, sha] : run.models)
          o << "<div><span class=\"mono\">" << esc(name) << "</span> <span class=\"desc mono\">"
            << esc(sha.substr(0, 12)) << "…</span></div>";
        o << "</td><td>" << esc(p.value("popper_version", "")) << "<div class=\"desc\">"
          << esc(build.value("build_type", "")) << " " << esc(build.value("compiler", ""))
          << "</div></td><td>";
        for (const auto& [v, n] : run.summary)
          if (n > 0)
            o << "<span class=\"pill v-" << css_class(v) << "\">" << n << " " << esc(v) << "</span> ";
        o << (run.merged_note.empty() ? "" : "<div class=\"desc\">" + esc(run.merged_note) + "</div>")
          << "</td><td class=\"mono\">" << esc(run.path) << "</td></tr>\n";
      }
      o << "</tbody></table>\n";
    }
    o << "</section>\n";
  }
  o << "</main><footer>Popper report · verdicts: survived (the claim held), falsified (it failed), "
       "inconclusive "
       "(could not decide), error (the check broke) · controls: falsified means the check was shown able to "
       "fail, "
       "unfalsifiable that it passed with the engine deliberately broken · charts: dots are raw repetitions, "
       "the line joins run "
       "medians, "
       "dashed lines are thresholds with the failing side shaded.</footer>\n<script>"
    << kScript << "</script></body></html>\n";
  return o.str();
}

}  // namespace popper::harness
