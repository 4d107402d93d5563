// `popper run [PATHS] [--id ID...] [--profile P] [--record]`: run every bound falsifier, print a
// verdict per item as it finishes, write evidence, optionally append status_history.
// The work is harness/run/plan.h (which items), harness/run/session.h (running them) and
// harness/evidence/record.h (what each contract leaves); this file wires flags to them.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "engine/core/atomic_file.h"
#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/cli/progress.h"
#include "harness/contract/contract_set.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/provenance.h"
#include "harness/evidence/record.h"
#include "harness/run/models.h"
#include "harness/run/plan.h"
#include "harness/run/process.h"
#include "harness/run/session.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct RunArgs {
  std::vector<std::string> paths;
  std::vector<std::string> ids;
  std::string profile;
  std::string build_dir;
  std::string evidence_dir;
  std::string model_cache;
  bool build_models = false;
  bool record = false;
  bool allow_dirty = false;
  bool json = false;
  bool no_evidence = false;
  bool keep_logs = false;
  std::string shard;           // "K/N" (harness/run/shard.h)
  std::string durations_from;  // evidence directory whose durations balance the shards
  bool controls = false;
  std::vector<std::string> models;  // NAME=PATH
};

// The command line as typed, for the evidence file.
std::vector<std::string> own_argv() {
  std::vector<std::string> out;
  auto text = read_file("/proc/self/cmdline");
  if (!text.ok()) return out;
  std::string cur;
  for (char ch : *text) {
    if (ch == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  return out;
}

std::string relative_to(const std::string& path, const std::string& base) {
  std::error_code ec;
  auto rel = fs::relative(path, base, ec);
  if (ec || rel.empty() || rel.string().rfind("..", 0) == 0) return path;
  return rel.string();
}

// "controls: 6 of 8 falsified, 1 UNFALSIFIABLE, 1 not run" for the closing summary.
std::string controls_text(const std::vector<ItemResult>& results) {
  int falsified = 0, unfalsifiable = 0, other = 0, not_run = 0, none = 0;
  for (const auto& r : results) {
    if (!r.control) {
      ++none;
    } else if (!r.control->ran) {
      ++not_run;
    } else if (r.control->verdict == Verdict::kFalsified) {
      ++falsified;
    } else if (r.control->unfalsifiable()) {
      ++unfalsifiable;
    } else {
      ++other;
    }
  }
  std::string s =
      "controls: " + std::to_string(falsified) + " of " + std::to_string(results.size()) + " falsified";
  if (unfalsifiable) s += ", " + std::to_string(unfalsifiable) + " UNFALSIFIABLE";
  if (other) s += ", " + std::to_string(other) + " inconclusive or broken";
  if (not_run) s += ", " + std::to_string(not_run) + " not run";
  if (none) s += ", " + std::to_string(none) + " without a control";
  return s;
}

// The terminal side of a run: progress per item, and per contract its evidence written and the
// closing summary line collected.
class RunView final : public RunObserver {
 public:
  RunView(const RunPlan& plan, RecordSettings settings, bool write)
      : progress_(static_cast<int>(plan.total), plan.id_width),
        settings_(std::move(settings)),
        write_(write) {}

  void item_started(const Item& item) override { progress_.start(item.id); }
  void tick(double elapsed) override { progress_.tick(elapsed); }
  void item_finished(const ItemResult& r) override { progress_.finish(r); }
  void control_started(const Item& item) override { progress_.start_control(item); }
  void control_finished(const Item&, const ControlResult& c) override { progress_.finish_control(c); }
  void interrupted(const Contract& c, const Item& item) override {
    std::fprintf(stderr, "\npopper run: interrupted; %s was stopped, no evidence written for %s\n",
                 item.id.c_str(), c.name.c_str());
  }

  void contract_finished(const PlannedContract& pc, const std::vector<ItemResult>& results,
                         const RunInfo& info) override {
    const Contract& c = *pc.contract;
    std::map<Verdict, int> counts;
    for (const auto& r : results) counts[r.verdict]++;
    std::string line = c.name + " " + c.version + ": " + std::to_string(counts[Verdict::kSurvived]) +
                       " survived, " + std::to_string(counts[Verdict::kFalsified]) + " falsified, " +
                       std::to_string(counts[Verdict::kInconclusive]) + " inconclusive, " +
                       std::to_string(counts[Verdict::kError]) + " error";
    if (settings_.controls) line += "; " + controls_text(results);
    nlohmann::json cj{{"contract", c.name}, {"version", c.version}, {"path", c.path}};
    if (write_) {
      RecordedRun rec = record_contract_run(pc, results, info, settings_);
      if (!rec.evidence_error.empty()) {
        std::fprintf(stderr, "popper run: writing evidence failed: %s\n", rec.evidence_error.c_str());
        harness_failure_ = true;
      } else {
        line += "\n    evidence: " + rec.evidence;
        cj["evidence"] = rec.evidence;
        if (!rec.record_error.empty()) {
          std::fprintf(stderr, "popper run --record: %s\n", rec.record_error.c_str());
          harness_failure_ = true;
        } else if (settings_.record) {
          line += "\n    recorded: " + c.path + " -> " + rec.recorded_version;
          cj["recorded_version"] = rec.recorded_version;
        }
      }
    }
    nlohmann::json ij = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json j{{"id", r.id},           {"verdict", verdict_name(r.verdict)},
                       {"reason", r.reason},   {"required", r.required},
                       {"profile", r.profile}, {"duration_s", r.duration_s}};
      if (r.control)
        j["control"] = {{"faults", r.control->faults},
                        {"ran", r.control->ran},
                        {"verdict", r.control->ran ? verdict_name(r.control->verdict) : "not run"},
                        {"unfalsifiable", r.control->unfalsifiable()},
                        {"reason", r.control->reason},
                        {"duration_s", r.control->duration_s}};
      ij.push_back(j);
    }
    cj["items"] = ij;
    summary_json_.push_back(cj);
    closing_.push_back(line);
  }

  const std::vector<std::string>& closing() const { return closing_; }
  const nlohmann::json& summary_json() const { return summary_json_; }
  bool harness_failure() const { return harness_failure_; }

 private:
  Progress progress_;
  RecordSettings settings_;
  bool write_;
  bool harness_failure_ = false;
  std::vector<std::string> closing_;
  nlohmann::json summary_json_ = nlohmann::json::array();
};

// --model NAME=PATH: each NAME is a model some planned item names, and PATH fits it (arch and
// shape); checked before anything runs.
Result<std::map<std::string, std::string>> model_overrides(const RunArgs& a, const RunPlan& plan,
                                                           const std::string& root) {
  std::map<std::string, std::string> out;
  std::set<std::string> named;
  std::optional<std::string> profile;
  if (!a.profile.empty()) profile = a.profile;
  for (const auto& pc : plan.contracts)
    for (const Item* it : pc.items)
      if (it->falsifier) {
        std::string m = effective_binding(*it->falsifier, profile).binding.model;
        if (!m.empty()) named.insert(m);
      }
  for (const auto& spec : a.models) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return make_error("--model ", spec, ": expected NAME=PATH (a model a contract names, and a GGUF file)");
    std::string name = spec.substr(0, eq), path = spec.substr(eq + 1);
    if (!named.count(name)) {
      std::string list;
      for (const auto& n : named) list += (list.empty() ? "" : ", ") + n;
      return make_error("--model ", spec, ": no item of this run names model ", name,
                        list.empty() ? std::string(" (none names a model)") : " (they name: " + list + ")");
    }
    if (out.count(name)) return make_error("--model ", name, ": given twice");
    std::error_code ec;
    path = fs::absolute(path, ec).lexically_normal().string();
    Status fits = check_substitute(name, path, root);
    if (!fits.ok()) return fits.error();
    out[name] = path;
  }
  return out;
}

int run_run(const RunArgs& a) {
  const std::string root = find_repo_root(".");
  if (const char* f = std::getenv("POPPER_FAULTS"); f != nullptr && *f != '\0') {
    std::fprintf(
        stderr,
        "popper run: POPPER_FAULTS=%s is set; verdicts of a deliberately broken engine mean nothing. "
        "Unset it: --controls switches each item's faults on for its control run only.\n",
        f);
    return 2;
  }
  auto loaded = cli::load_checked_contracts(a.paths, root, "run", "; fix them (see `popper validate`)");
  if (!loaded) return 2;
  const ContractSet& set = *loaded;

  PlanRequest request;
  request.ids = a.ids;
  request.profile = a.profile;
  if (!a.shard.empty()) {
    auto spec = parse_shard(a.shard);
    if (!spec.ok()) {
      std::fprintf(stderr, "popper run: %s\n", spec.message().c_str());
      return 2;
    }
    request.shard = *spec;
    std::vector<std::string> names;
    for (const Contract* c : set.contracts()) names.push_back(c->name);
    request.durations = recorded_durations(
        a.durations_from.empty() ? (fs::path(root) / "evidence").string() : a.durations_from, names);
  }
  auto plan = plan_run(set.contracts(), request);
  if (!plan.ok()) {
    std::fprintf(stderr, "popper run: %s\n", plan.message().c_str());
    return 2;
  }
  if (plan->shard)
    std::fprintf(stderr, "popper run: shard %d/%d: %zu of %zu items (estimated %.1f s of %.1f s)\n",
                 plan->shard->index, plan->shard->count, plan->total, plan->shard_items_total,
                 plan->shard_load_s, plan->load_s);

  auto overrides = model_overrides(a, *plan, root);
  if (!overrides.ok()) {
    std::fprintf(stderr, "popper run: %s\n", overrides.message().c_str());
    return 2;
  }

  GitState git = read_git_state(
      root, relative_to(a.evidence_dir.empty() ? root + "/evidence" : a.evidence_dir, root) + "/");
  if (a.record && git.dirty && !a.allow_dirty) {
    std::fprintf(
        stderr,
        "popper run --record: the working tree has uncommitted changes (%zu paths, e.g. %s); status_history "
        "only records verdicts of committed code. Commit first, or pass --allow-dirty.\n",
        git.dirty_paths.size(), git.dirty_paths.empty() ? "" : git.dirty_paths.front().c_str());
    return 2;
  }
  if (a.record && !git.available) {
    std::fprintf(stderr, "popper run --record: not a git checkout; a record needs a commit\n");
    return 2;
  }

  RunOptions opts;
  opts.build_dir = a.build_dir.empty() ? default_build_dir() : a.build_dir;
  opts.repo_root = root;
  opts.model_cache = a.model_cache.empty() ? default_model_cache(root) : a.model_cache;
  opts.popper_exe = self_exe_path();
  if (!a.profile.empty()) opts.profile = a.profile;
  opts.build_models = a.build_models;
  opts.gpu = detect_gpu();
  opts.controls = a.controls;
  opts.model_overrides = *overrides;
  char tmpl[] = "/tmp/popper-run-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::fprintf(stderr, "popper run: cannot create a scratch directory in /tmp\n");
    return 2;
  }
  opts.work_dir = tmpl;

  RecordSettings settings;
  settings.evidence_dir = a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  settings.repo_root = root;
  settings.provenance = collect_provenance(git, opts.gpu, opts.build_dir);
  settings.record = a.record;
  settings.commit = git.commit;
  settings.plan = &*plan;
  settings.controls = a.controls;
  RunInfo info;
  info.controls = a.controls;
  info.argv = own_argv();
  if (!a.profile.empty()) info.profile = a.profile;
  info.build_dir = opts.build_dir;

  install_interrupt_handler();
  RunView view(*plan, settings, !a.no_evidence);
  std::fprintf(stderr, "popper run: %zu item%s from %zu contract%s (build %s%s%s)\n", plan->total,
               plan->total == 1 ? "" : "s", plan->contracts.size(), plan->contracts.size() == 1 ? "" : "s",
               relative_to(opts.build_dir, fs::current_path().string()).c_str(),
               opts.gpu.present ? ", GPU " : ", no GPU", opts.gpu.present ? opts.gpu.name.c_str() : "");
  RunTotals totals = execute_plan(*plan, opts, info, view);

  if (!a.keep_logs) {
    std::error_code ec;
    fs::remove_all(opts.work_dir, ec);
  }
  FILE* out = a.json ? stderr : stdout;
  std::fprintf(out, "\n");
  for (const auto& l : view.closing()) std::fprintf(out, "%s\n", l.c_str());
  if (a.keep_logs) std::fprintf(out, "logs kept in %s\n", opts.work_dir.c_str());
  if (a.json) {
    nlohmann::json j{{"contracts", view.summary_json()},
                     {"summary",
                      {{"survived", totals.verdicts[Verdict::kSurvived]},
                       {"falsified", totals.verdicts[Verdict::kFalsified]},
                       {"inconclusive", totals.verdicts[Verdict::kInconclusive]},
                       {"error", totals.verdicts[Verdict::kError]}}}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  if (totals.interrupted) return 130;
  if (view.harness_failure()) return 2;
  // A control that did not falsify (survived: unfalsifiable; broke) fails the run like a verdict.
  const int bad_controls = totals.controls[Verdict::kSurvived] + totals.controls[Verdict::kError];
  return totals.verdicts[Verdict::kFalsified] + totals.verdicts[Verdict::kError] + bad_controls > 0 ? 1 : 0;
}

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = add_command(app, "run", "Run the falsifiers bound to contract items; write evidence",
                              [a] { return run_run(*a); });
  cmd->add_option("paths", a->paths, "Contract files or directories (default: <repo>/contracts)");
  cmd->add_option("--id", a->ids, "Run only these item IDs (repeatable)");
  cmd->add_option("--profile", a->profile,
                  "Profile to run where an item defines it (default: each item's first)");
  cmd->add_option("--build-dir", a->build_dir, "Build directory (default: the one this popper was built in)");
  cmd->add_option("--evidence-dir", a->evidence_dir, "Where evidence goes (default: <repo>/evidence)");
  cmd->add_option("--model-cache", a->model_cache,
                  "Synthetic model cache (default: $POPPER_MODEL_CACHE or "
                  "<repo>/.cache/models)");
  cmd->add_flag("--build-models", a->build_models,
                "Build missing large synthetic models too (tiny ones always are)");
  cmd->add_flag("--record", a->record, "Append a status_history entry to each contract (clean tree only)");
  cmd->add_flag("--allow-dirty", a->allow_dirty, "Let --record proceed on a tree with uncommitted changes");
  cmd->add_flag("--json", a->json, "Print a machine-readable summary on stdout (progress stays on stderr)");
  cmd->add_flag("--no-evidence", a->no_evidence, "Do not write evidence files (a dry look at verdicts)");
  cmd->add_flag("--keep-logs", a->keep_logs, "Keep each falsifier's stdout/stderr/output under /tmp");
  cmd->add_option(
      "--shard", a->shard,
      "Run shard K of N (K/N): a deterministic, duration-balanced subset; combine with `popper merge`");
  cmd->add_option("--durations-from", a->durations_from,
                  "Evidence directory whose recorded durations balance --shard (default: <repo>/evidence)");
  cmd->add_flag("--controls", a->controls,
                "After each item that survives, rerun its check under its control faults: it must come out "
                "falsified, or the item is unfalsifiable");
  cmd->add_option("--model", a->models,
                  "NAME=PATH: judge the items that name model NAME on this GGUF file instead (repeatable); a "
                  "file whose arch or shape does not fit is refused before anything runs");
}

}  // namespace
POPPER_REGISTER_COMMAND(41, register_run);
}  // namespace popper::cli
