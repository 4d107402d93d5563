// `popper report`: what the evidence says, for a reader.
//
// build_report() reads every evidence file of every contract (chronologically, by the file's
// time-stamped name) and derives, per contract: the items' latest verdicts and what changed
// since the previous run; a series per (item, profile, source, metric) of raw samples across
// runs, with the thresholds that apply to it; for each series the latest run against the run
// before with a Mann-Whitney U test on the raw repetitions (a regression is a significant change
// in the worse direction, see kRegressionAlpha / kMinRelativeChange); and series whose latest
// repetitions are too noisy to trust (coefficient of variation above kUnstableCv), listed apart.
// render_report_html() and render_report_markdown() turn that into one self-contained HTML page
// (inline CSS and SVG charts, no network) and its Markdown twin. With the controls of
// `popper run --controls` in the evidence, each item shows its control's verdict and each
// contract its sensitivity: how many of its items' checks were shown able to fail.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/contract.h"
#include "harness/evidence/evidence.h"
#include "harness/run/fingerprint.h"
#include "harness/stats/mann_whitney.h"

namespace popper::harness {

// A change is called significant only below this p-value: a report compares many series, and a
// 5% level would flag one stable series in twenty as moved.
inline constexpr double kRegressionAlpha = 0.01;
// ... and only when the median moved by at least 2%: smaller shifts are below what run-to-run
// benchmark noise on a shared CI machine lets anyone act on.
inline constexpr double kMinRelativeChange = 0.02;
// Repetitions whose standard deviation exceeds 10% of their mean make a median's confidence
// interval too wide for its verdict (or a regression call) to mean much: listed as unstable.
inline constexpr double kUnstableCv = 0.10;
// Fewer repetitions than this give no meaningful coefficient of variation.
inline constexpr size_t kMinSamplesForCv = 3;
// Charts per item: the metrics its thresholds name, else the first few it reports.
inline constexpr size_t kMaxSeriesPerItem = 4;

struct ReportRun {
  std::string path;  // relative to the evidence directory
  std::string started_at;
  std::string commit;  // 12 hex, "-dirty" appended when the tree was dirty
  std::string profile;
  std::string merged_note;  // "merged from 3 shards" for `popper merge` output
  nlohmann::json provenance;
  std::map<std::string, int> summary;                       // verdict -> count
  std::vector<std::pair<std::string, std::string>> models;  // name, sha256
};

struct SeriesPoint {
  size_t run = 0;  // index into ContractReport::runs
  std::vector<double> samples;
  double median = 0;
};

struct SeriesThreshold {
  std::string op;
  double value = 0;
  std::string statistic;
};

enum class ChangeKind { kNone, kRegression, kImprovement, kShift };

struct SeriesChange {
  MannWhitney test;
  double previous_median = 0, latest_median = 0;
  double relative = 0;  // (latest - previous) / |previous|
  ChangeKind kind = ChangeKind::kNone;
};

struct Series {
  std::string item_id, profile, source, metric;
  std::vector<SeriesPoint> points;  // chronological
  std::vector<SeriesThreshold> thresholds;
  int better = 0;                      // +1 higher is better, -1 lower is better, 0 unknown
  std::optional<SeriesChange> change;  // latest point vs the one before
  double latest_cv = 0;
  bool unstable = false;
};

struct ItemRow {
  std::string id, description, verdict, reason, profile, blocked_on;
  bool required = true;
  double duration_s = 0;
  RecordedControl control;                      // the item's control run (present with popper run --controls)
  std::string stale;                            // "stale: falsifier rebuilt since" when checked and stale
  std::optional<std::string> previous_verdict;  // absent: no earlier run had this item
  nlohmann::json thresholds = nlohmann::json::array();  // the latest judgements
  std::vector<size_t> series;                           // indices into ContractReport::series
};

struct ContractReport {
  std::string name, version, claims_sha256;
  std::string problem;         // "no evidence", "stale: the contract's claims changed since"
  bool controls_ran = false;   // the latest run had --controls
  int controls_falsified = 0;  // sensitivity: controls_falsified / items.size()
  std::vector<ReportRun> runs;
  std::vector<ItemRow> items;  // from the latest run
  std::vector<Series> series;
};

struct Report {
  std::string evidence_dir;
  std::string generated_at;
  int files_verified = 0;
  std::vector<std::string> integrity_problems;  // verify-evidence findings
  std::vector<std::string> load_problems;       // files that could not be read
  std::vector<ContractReport> contracts;
  std::map<std::string, int> totals;  // verdict -> count over the latest runs
};

// `contracts` (may be empty) adds contracts that have no evidence yet and marks stale evidence;
// with `fingerprint_now` (what would decide an item now, run/fingerprint.h) each item of a known
// contract whose verdict no longer stands is marked stale with the reasons.
Result<Report> build_report(const std::string& evidence_dir, const std::vector<const Contract*>& contracts,
                            const std::function<Fingerprint(const Item&)>& fingerprint_now = {});

std::string render_report_html(const Report& r);
std::string render_report_markdown(const Report& r);

// Shared by both renderers.
const char* change_kind_name(ChangeKind k);
std::string format_relative(double rel);  // "+3.2%", "-18%"
std::string format_p(double p);           // "0.0004", "< 1e-6"

}  // namespace popper::harness
