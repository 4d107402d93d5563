#include "harness/evidence/record.h"

#include <filesystem>

#include "engine/core/atomic_file.h"
#include "harness/contract/history.h"
#include "harness/evidence/evidence.h"
#include "harness/run/clock.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace fs = std::filesystem;

namespace {

std::string relative_to(const std::string& path, const std::string& base) {
  std::error_code ec;
  auto rel = fs::relative(path, base, ec);
  if (ec || rel.empty() || rel.string().rfind("..", 0) == 0) return path;
  return rel.string();
}

}  // namespace

Result<std::string> record_run(const Contract& c, const std::vector<ItemResult>& items,
                               const std::string& commit, const std::string& evidence_path,
                               const std::string& repo_root) {
  std::map<std::string, Verdict> now, previous;
  std::string figures;
  for (const auto& r : items) {
    now[r.id] = r.verdict;
    if (!r.detail.contains("thresholds")) continue;
    for (const auto& t : r.detail["thresholds"]) {
      if (!t.contains("point")) continue;
      std::string short_id = r.id.substr(r.id.rfind("_V") == std::string::npos ? 0 : r.id.rfind("_V") + 1);
      figures += (figures.empty() ? "" : "; ") + short_id + " " + t.value("statistic", "") + " " +
                 t.value("metric", "") + " " + fmt_num(t.value("point", 0.0)) + " (" + t.value("op", "") +
                 " " + fmt_num(t.value("value", 0.0)) + ")";
    }
  }
  std::string missing;  // the last recorded evidence, when this checkout does not hold it
  for (auto it = c.history.rbegin(); it != c.history.rend(); ++it) {
    if (it->evidence.empty()) continue;
    const std::string last = (std::filesystem::path(repo_root) / it->evidence).string();
    // Evidence is not committed (CI keeps it as an artifact), so a fresh clone has none of the
    // files its history names: with nothing to compare, the entry counts as a change (minor).
    // A file that is here but unreadable is still an error.
    std::error_code ec;
    if (!std::filesystem::exists(last, ec)) {
      missing = it->evidence;
      break;
    }
    auto doc = read_evidence(last);
    if (!doc.ok()) return make_error(c.path, ": the last recorded evidence cannot be read: ", doc.message());
    for (const auto& item : (*doc)["items"])
      if (auto v = parse_verdict(item.value("verdict", ""))) previous[item.value("id", "")] = *v;
    break;
  }
  auto [version, kind] = bump_version(c.version, previous, now);
  NewHistoryEntry e{version, utc_date(), commit, history_summary(now, figures), evidence_path};
  auto text = append_history_text(c, e);
  if (!text.ok()) return text.error();
  Status st = write_file_atomic(c.path, *text);
  if (!st.ok()) return st.error();
  return version + " (" + kind + (missing.empty() ? "" : "; " + missing + " is not here to compare with") + ")";
}

RecordedRun record_contract_run(const PlannedContract& pc, const std::vector<ItemResult>& results,
                                const RunInfo& info, const RecordSettings& s) {
  RecordedRun out;
  const Contract& c = *pc.contract;
  nlohmann::json doc = make_evidence(c, results, s.provenance, info);
  if (s.plan && s.plan->shard) {
    std::vector<std::string> mine;
    for (const auto& r : results) mine.push_back(r.id);
    doc["run"]["shard"] = {{"index", s.plan->shard->index},
                           {"count", s.plan->shard->count},
                           {"plan_sha256", s.plan->shard_plan_sha256},
                           {"items", mine},
                           {"contract_items", pc.all_items}};
  }
  auto rel = write_evidence(s.evidence_dir, doc);
  if (!rel.ok()) {
    out.evidence_error = rel.message();
    return out;
  }
  out.evidence = relative_to((fs::path(s.evidence_dir) / *rel).string(), s.repo_root);
  if (s.record) {
    auto v = record_run(c, results, s.commit, out.evidence, s.repo_root);
    if (!v.ok())
      out.record_error = v.message();
    else
      out.recorded_version = *v;
  }
  return out;
}

}  // namespace popper::harness
