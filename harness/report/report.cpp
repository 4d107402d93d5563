#include "harness/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "harness/evidence/evidence.h"
#include "harness/evidence/provenance.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Which way is better for a metric nobody put a threshold on, from its name: times, errors and
// sizes want to be small; rates and speedups large. 0 when the name says nothing.
int better_from_name(const std::string& metric) {
  std::string m = metric;
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const char* up :
       {"per_second", "per_s", "speedup", "throughput", "tok_s", "tps", "rate", "gbps", "flops"})
    if (m.find(up) != std::string::npos) return +1;
  for (const char* down : {"time", "latency", "error", "err", "_ms", "_us", "_ns", "bytes", "ulp", "diff"})
    if (m.find(down) != std::string::npos) return -1;
  return 0;
}

int better_from_op(const std::string& op) { return op[0] == '>' ? +1 : op[0] == '<' ? -1 : 0; }

ReportRun run_of(const std::string& path, const json& doc) {
  ReportRun r;
  r.path = path;
  r.started_at = doc["run"].value("started_at", "");
  const json& git = doc["provenance"].value("git", json::object());
  r.commit = git.value("short_commit", "");
  if (r.commit.empty()) r.commit = "(no git)";
  if (git.value("dirty", false)) r.commit += "-dirty";
  if (doc["run"].contains("profile") && doc["run"]["profile"].is_string()) r.profile = doc["run"]["profile"];
  if (doc["run"].contains("merged_from"))
    r.merged_note = "merged from " + std::to_string(doc["run"]["merged_from"].size()) + " shards";
  r.provenance = doc.value("provenance", json::object());
  const json summary = doc.value("summary", json::object());
  for (const auto& [k, v] : summary.items())
    if (v.is_number_integer()) r.summary[k] = v.get<int>();
  std::set<std::string> seen;
  for (const auto& it : doc.value("items", json::array())) {
    if (!it.contains("model") || !it["model"].is_object()) continue;
    std::string name = it["model"].value("name", ""), sha = it["model"].value("sha256", "");
    if (!sha.empty() && seen.insert(name + sha).second) r.models.emplace_back(name, sha);
  }
  return r;
}

double coefficient_of_variation(const std::vector<double>& s) {
  double m = mean(s);
  return m == 0 ? 0 : stddev(s) / std::fabs(m);
}

// The latest point against the one before it.
void judge_change(Series& s) {
  if (s.points.size() < 2) return;
  const SeriesPoint& prev = s.points[s.points.size() - 2];
  const SeriesPoint& last = s.points.back();
  auto mw = mann_whitney_u(last.samples, prev.samples);
  if (!mw) return;
  SeriesChange c;
  c.test = *mw;
  c.previous_median = prev.median;
  c.latest_median = last.median;
  c.relative = prev.median == 0 ? 0 : (last.median - prev.median) / std::fabs(prev.median);
  bool significant = mw->p < kRegressionAlpha && std::fabs(c.relative) >= kMinRelativeChange;
  if (significant) {
    int moved = c.relative > 0 ? +1 : -1;
    c.kind = s.better == 0       ? ChangeKind::kShift
             : moved == s.better ? ChangeKind::kImprovement
                                 : ChangeKind::kRegression;
  }
  s.change = c;
}

void build_contract(ContractReport& cr, const std::vector<std::pair<std::string, json>>& docs) {
  std::map<std::string, size_t> series_index;  // key -> index
  std::map<std::string, std::string> last_verdict, prev_verdict;
  for (size_t ri = 0; ri < docs.size(); ++ri) {
    const auto& [path, doc] = docs[ri];
    cr.runs.push_back(run_of(path, doc));
    for (const auto& it : doc.value("items", json::array())) {
      std::string id = it.value("id", "");
      if (auto f = last_verdict.find(id); f != last_verdict.end()) prev_verdict[id] = f->second;
      last_verdict[id] = it.value("verdict", "error");
      std::string profile = it.value("profile", "");
      std::set<std::string> thresholded;
      for (const auto& t : it.value("thresholds", json::array())) thresholded.insert(t.value("metric", ""));
      size_t charted = 0;
      const json samples = it.value("samples", json::object());
      for (const auto& [source, metrics] : samples.items()) {
        for (const auto& [metric, values] : metrics.items()) {
          bool wanted = thresholded.empty() ? metric != "cpu_time" : thresholded.count(metric) > 0;
          if (!wanted || !values.is_array() || values.empty()) continue;
          std::string key = id + "\x1f" + profile + "\x1f" + source + "\x1f" + metric;
          auto f = series_index.find(key);
          if (f == series_index.end()) {
            if (thresholded.empty() && charted >= kMaxSeriesPerItem) continue;
            Series s;
            s.item_id = id;
            s.profile = profile;
            s.source = source;
            s.metric = metric;
            s.better = better_from_name(metric);
            f = series_index.emplace(key, cr.series.size()).first;
            cr.series.push_back(s);
          }
          ++charted;
          SeriesPoint p;
          p.run = ri;
          for (const auto& v : values)
            if (v.is_number()) p.samples.push_back(v.get<double>());
          if (p.samples.empty()) continue;
          p.median = median(p.samples);
          Series& s = cr.series[f->second];
          s.points.push_back(std::move(p));
          // The thresholds of the run that produced the latest point are the ones drawn.
          s.thresholds.clear();
          for (const auto& t : it.value("thresholds", json::array())) {
            if (t.value("metric", "") != metric || t.value("source", source) != source) continue;
            s.thresholds.push_back(
                {t.value("op", ">="), t.value("value", 0.0), t.value("statistic", "median")});
            s.better = better_from_op(t.value("op", ">="));
          }
        }
      }
    }
  }
  for (Series& s : cr.series) {
    judge_change(s);
    const auto& last = s.points.back().samples;
    if (last.size() >= kMinSamplesForCv) {
      s.latest_cv = coefficient_of_variation(last);
      s.unstable = s.latest_cv > kUnstableCv;
    }
  }
  const json& latest = docs.back().second;
  cr.version = latest["contract"].value("version", "");
  cr.controls_ran = latest["run"].value("controls", false);
  for (const auto& it : latest.value("items", json::array())) {
    ItemRow row;
    row.id = it.value("id", "");
    row.description = it.value("description", "");
    row.verdict = it.value("verdict", "error");
    row.reason = it.value("reason", "");
    row.profile = it.value("profile", "");
    row.blocked_on = it.value("blocked_on", "");
    row.required = it.value("required", true);
    row.duration_s = it.value("duration_s", 0.0);
    row.control = recorded_control(it);
    cr.controls_falsified += row.control.ran && row.control.verdict == Verdict::kFalsified;
    if (auto f = prev_verdict.find(row.id); f != prev_verdict.end()) row.previous_verdict = f->second;
    row.thresholds = it.value("thresholds", json::array());
    for (size_t si = 0; si < cr.series.size(); ++si)
      if (cr.series[si].item_id == row.id && cr.series[si].profile == row.profile &&
          cr.series[si].points.back().run == docs.size() - 1)
        row.series.push_back(si);
    cr.items.push_back(std::move(row));
  }
}

}  // namespace

const char* change_kind_name(ChangeKind k) {
  switch (k) {
    case ChangeKind::kRegression:
      return "regression";
    case ChangeKind::kImprovement:
      return "improvement";
    case ChangeKind::kShift:
      return "changed";
    case ChangeKind::kNone:
      break;
  }
  return "no significant change";
}

std::string format_relative(double rel) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::fabs(rel) >= 0.1 ? "%+.0f%%" : "%+.1f%%", rel * 100);
  return buf;
}

std::string format_p(double p) {
  if (p < 1e-6) return "< 1e-6";
  char buf[32];
  std::snprintf(buf, sizeof buf, p < 0.001 ? "%.1e" : "%.3f", p);
  return buf;
}

Result<Report> build_report(const std::string& evidence_dir, const std::vector<const Contract*>& contracts,
                            const std::function<Fingerprint(const Item&)>& fingerprint_now) {
  std::error_code ec;
  if (!fs::is_directory(evidence_dir, ec)) return make_error(evidence_dir, ": no such evidence directory");
  Report rep;
  rep.evidence_dir = evidence_dir;
  rep.generated_at = utc_timestamp_iso();
  VerifyReport vr = verify_evidence(evidence_dir);
  rep.files_verified = vr.files_checked;
  rep.integrity_problems = vr.problems;

  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(evidence_dir, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.')
      names.push_back(e.path().filename().string());
  for (const Contract* c : contracts)
    if (std::find(names.begin(), names.end(), c->name) == names.end()) names.push_back(c->name);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    ContractReport cr;
    cr.name = name;
    std::vector<std::pair<std::string, json>> docs;
    for (const auto& rel : list_evidence(evidence_dir, name)) {
      auto doc = read_evidence((fs::path(evidence_dir) / rel).string());
      if (!doc.ok()) {
        rep.load_problems.push_back(doc.message());
        continue;
      }
      docs.emplace_back(rel, std::move(*doc));
    }
    const Contract* contract = nullptr;
    for (const Contract* c : contracts)
      if (c->name == name) contract = c;
    if (docs.empty()) {
      if (!contract) continue;  // an empty directory of no known contract
      cr.version = contract->version;
      cr.problem = "no evidence yet; run `popper run`";
      for (const Item& it : contract->items) {
        ItemRow row;
        row.id = it.id;
        row.description = it.description;
        row.verdict = "not run";
        row.blocked_on = it.blocked_on;
        row.required = it.required && it.blocked_on.empty();
        cr.items.push_back(std::move(row));
      }
      rep.contracts.push_back(std::move(cr));
      continue;
    }
    try {
      build_contract(cr, docs);
      cr.claims_sha256 = docs.back().second["contract"].value("claims_sha256", "");
    } catch (const json::exception& e) {
      rep.load_problems.push_back(name + ": unexpected evidence shape: " + e.what());
      continue;
    }
    if (contract && contract->claims_sha256 != cr.claims_sha256)
      cr.problem = "stale: the contract's claims changed since " + docs.back().first + "; rerun";
    if (contract && fingerprint_now) {
      std::map<std::string, Fingerprint> recorded;
      for (const auto& it : docs.back().second.value("items", json::array()))
        recorded[it.value("id", "")] = Fingerprint::from_json(it.value("fingerprint", json()));
      for (auto& row : cr.items) {
        const Item* item = contract->find_item(row.id);
        if (item == nullptr) continue;
        for (const auto& w : stale_reasons(recorded[row.id], fingerprint_now(*item)))
          row.stale += (row.stale.empty() ? "stale: " : "; ") + w;
      }
    }
    for (const auto& row : cr.items) rep.totals[row.verdict]++;
    rep.contracts.push_back(std::move(cr));
  }
  return rep;
}

}  // namespace popper::harness
