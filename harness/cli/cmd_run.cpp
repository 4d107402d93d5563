// `popper run [PATHS] [--id ID...] [--profile P] [--record]`: run every bound falsifier, print a
// verdict per item as it finishes, write evidence, optionally append status_history.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>

#include "engine/core/atomic_file.h"
#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/contract/contract_set.h"
#include "harness/contract/history.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/provenance.h"
#include "harness/run/models.h"
#include "harness/run/process.h"
#include "harness/run/runner.h"
#include "harness/run/shard.h"
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

// One line per item: "[2/7] FALSIFY-..._003  survived      1.2 s  reason". On a terminal the
// line shows the running item and its elapsed time until the verdict replaces it.
class Progress {
 public:
  Progress(int total, size_t id_width)
      : total_(total), id_width_(id_width), tty_(::isatty(STDERR_FILENO)), color_(use_color(STDERR_FILENO)) {}

  void start(const std::string& id) {
    ++index_;
    id_ = id;
    last_draw_ = -1;
    if (tty_) draw(0);
  }
  void tick(double elapsed) {
    if (tty_ && elapsed - last_draw_ >= 0.2) draw(elapsed);
  }
  void finish(const ItemResult& r) {
    std::string reason = r.reason;
    if (reason.size() > 240) reason = reason.substr(0, 237) + "...";
    std::fprintf(stderr, "%s%s %-*s  %s %8s  %s\n", tty_ ? "\r\033[K" : "", prefix().c_str(),
                 static_cast<int>(id_width_), r.id.c_str(), verdict_label(r.verdict, color_).c_str(),
                 format_duration(r.duration_s).c_str(), reason.c_str());
    std::fflush(stderr);
  }

 private:
  std::string prefix() const {
    std::string i = std::to_string(index_), t = std::to_string(total_);
    return "[" + std::string(t.size() - std::min(t.size(), i.size()), ' ') + i + "/" + t + "]";
  }
  void draw(double elapsed) {
    last_draw_ = elapsed;
    std::fprintf(stderr, "\r\033[K%s %-*s  running %8s", prefix().c_str(), static_cast<int>(id_width_),
                 id_.c_str(), format_duration(elapsed).c_str());
    std::fflush(stderr);
  }

  int total_;
  size_t id_width_;
  bool tty_, color_;
  int index_ = 0;
  std::string id_;
  double last_draw_ = -1;
};

std::string relative_to(const std::string& path, const std::string& base) {
  std::error_code ec;
  auto rel = fs::relative(path, base, ec);
  if (ec || rel.empty() || rel.string().rfind("..", 0) == 0) return path;
  return rel.string();
}

int run_run(const RunArgs& a) {
  const std::string root = find_repo_root(".");
  auto loaded = cli::load_checked_contracts(a.paths, root, "run", "; fix them (see `popper validate`)");
  if (!loaded) return 2;
  const ContractSet& set = *loaded;

  // Which items run.
  std::set<std::string> wanted(a.ids.begin(), a.ids.end()), matched;
  std::vector<std::pair<const Contract*, std::vector<const Item*>>> plan;
  bool profile_known = a.profile.empty();
  size_t total = 0, id_width = 0;
  for (const Contract* c : set.contracts()) {
    std::vector<const Item*> items;
    for (const Item& it : c->items) {
      if (it.falsifier)
        for (const auto& p : it.falsifier->profiles) profile_known = profile_known || p.name == a.profile;
      if (!wanted.empty() && !wanted.count(it.id)) continue;
      matched.insert(it.id);
      items.push_back(&it);
      id_width = std::max(id_width, it.id.size());
    }
    total += items.size();
    if (!items.empty()) plan.emplace_back(c, items);
  }
  for (const auto& id : wanted) {
    if (!matched.count(id)) {
      std::fprintf(stderr, "popper run: --id %s: no such item in the contracts given\n", id.c_str());
      return 2;
    }
  }
  if (!profile_known) {
    std::fprintf(stderr, "popper run: --profile %s: no item defines this profile\n", a.profile.c_str());
    return 2;
  }
  // --shard K/N: keep this shard's items; every contract stays in the plan (possibly with no
  // items) so each shard writes evidence for every contract and `popper merge` can count them.
  std::optional<ShardSpec> shard;
  std::string shard_plan_sha;
  std::map<std::string, std::vector<std::string>> contract_items;  // the full list, per contract
  if (!a.shard.empty()) {
    auto spec = parse_shard(a.shard);
    if (!spec.ok()) {
      std::fprintf(stderr, "popper run: %s\n", spec.message().c_str());
      return 2;
    }
    shard = *spec;
    std::vector<std::string> names;
    for (const Contract* c : set.contracts()) names.push_back(c->name);
    auto durations = recorded_durations(
        a.durations_from.empty() ? (fs::path(root) / "evidence").string() : a.durations_from, names);
    std::vector<ShardItem> all;
    for (const auto& [c, items] : plan)
      for (const Item* it : items) {
        contract_items[c->name].push_back(it->id);
        auto d = durations.find(it->id);
        all.push_back({it->id, d == durations.end() ? std::nullopt : std::optional<double>(d->second)});
      }
    for (const Contract* c : set.contracts())
      if (!contract_items.count(c->name) && wanted.empty()) {
        contract_items[c->name] = {};
        plan.emplace_back(c, std::vector<const Item*>{});
      }
    ShardPlan sp = plan_shards(all, shard->count);
    shard_plan_sha = sp.sha256;
    size_t k = 0;
    total = 0;
    for (auto& [c, items] : plan) {
      std::vector<const Item*> mine;
      for (const Item* it : items)
        if (sp.shard_of[k++] == shard->index) mine.push_back(it);
      items = mine;
      total += items.size();
    }
    std::fprintf(stderr, "popper run: shard %d/%d: %zu of %zu items (estimated %.1f s of %.1f s)\n",
                 shard->index, shard->count, total, all.size(),
                 sp.load_s[static_cast<size_t>(shard->index - 1)],
                 std::accumulate(sp.load_s.begin(), sp.load_s.end(), 0.0));
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
  char tmpl[] = "/tmp/popper-run-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::fprintf(stderr, "popper run: cannot create a scratch directory in /tmp\n");
    return 2;
  }
  opts.work_dir = tmpl;
  const std::string evidence_dir =
      a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  nlohmann::json provenance = collect_provenance(git, opts.gpu, opts.build_dir);

  install_interrupt_handler();
  Progress progress(static_cast<int>(total), id_width);
  opts.on_tick = [&](double el) { progress.tick(el); };
  std::fprintf(stderr, "popper run: %zu item%s from %zu contract%s (build %s%s%s)\n", total,
               total == 1 ? "" : "s", plan.size(), plan.size() == 1 ? "" : "s",
               relative_to(opts.build_dir, fs::current_path().string()).c_str(),
               opts.gpu.present ? ", GPU " : ", no GPU", opts.gpu.present ? opts.gpu.name.c_str() : "");

  nlohmann::json summary_json = nlohmann::json::array();
  std::map<Verdict, int> totals;
  bool harness_failure = false;
  std::vector<std::string> closing;
  for (const auto& [c, items] : plan) {
    RunInfo info;
    info.started_at = utc_timestamp_iso();
    info.argv = own_argv();
    if (!a.profile.empty()) info.profile = a.profile;
    info.build_dir = opts.build_dir;
    std::vector<ItemResult> results;
    for (const Item* it : items) {
      if (interrupted()) break;
      progress.start(it->id);
      ItemResult r = run_item(*c, *it, opts);
      if (interrupted()) {
        std::fprintf(stderr, "\npopper run: interrupted; %s was stopped, no evidence written for %s\n",
                     it->id.c_str(), c->name.c_str());
        break;
      }
      progress.finish(r);
      totals[r.verdict]++;
      results.push_back(std::move(r));
    }
    if (interrupted()) break;
    info.finished_at = utc_timestamp_iso();
    std::map<Verdict, int> counts;
    for (const auto& r : results) counts[r.verdict]++;
    std::string line = c->name + " " + c->version + ": " + std::to_string(counts[Verdict::kSurvived]) +
                       " survived, " + std::to_string(counts[Verdict::kFalsified]) + " falsified, " +
                       std::to_string(counts[Verdict::kInconclusive]) + " inconclusive, " +
                       std::to_string(counts[Verdict::kError]) + " error";
    nlohmann::json cj{{"contract", c->name}, {"version", c->version}, {"path", c->path}};
    if (!a.no_evidence) {
      nlohmann::json doc = make_evidence(*c, results, provenance, info);
      if (shard) {
        std::vector<std::string> mine;
        for (const auto& r : results) mine.push_back(r.id);
        doc["run"]["shard"] = {{"index", shard->index},
                               {"count", shard->count},
                               {"plan_sha256", shard_plan_sha},
                               {"items", mine},
                               {"contract_items", contract_items[c->name]}};
      }
      auto rel = write_evidence(evidence_dir, doc);
      if (!rel.ok()) {
        std::fprintf(stderr, "popper run: writing evidence failed: %s\n", rel.message().c_str());
        harness_failure = true;
      } else {
        std::string shown = relative_to((fs::path(evidence_dir) / *rel).string(), root);
        line += "\n    evidence: " + shown;
        cj["evidence"] = shown;
        if (a.record) {
          auto v = record_run(*c, results, git.commit, shown, root);
          if (!v.ok()) {
            std::fprintf(stderr, "popper run --record: %s\n", v.message().c_str());
            harness_failure = true;
          } else {
            line += "\n    recorded: " + c->path + " -> " + *v;
            cj["recorded_version"] = *v;
          }
        }
      }
    }
    nlohmann::json ij = nlohmann::json::array();
    for (const auto& r : results)
      ij.push_back({{"id", r.id},
                    {"verdict", verdict_name(r.verdict)},
                    {"reason", r.reason},
                    {"required", r.required},
                    {"profile", r.profile},
                    {"duration_s", r.duration_s}});
    cj["items"] = ij;
    summary_json.push_back(cj);
    closing.push_back(line);
  }
  if (!a.keep_logs) {
    std::error_code ec;
    fs::remove_all(opts.work_dir, ec);
  }
  FILE* out = a.json ? stderr : stdout;
  std::fprintf(out, "\n");
  for (const auto& l : closing) std::fprintf(out, "%s\n", l.c_str());
  if (a.keep_logs) std::fprintf(out, "logs kept in %s\n", opts.work_dir.c_str());
  if (a.json) {
    nlohmann::json j{{"contracts", summary_json},
                     {"summary",
                      {{"survived", totals[Verdict::kSurvived]},
                       {"falsified", totals[Verdict::kFalsified]},
                       {"inconclusive", totals[Verdict::kInconclusive]},
                       {"error", totals[Verdict::kError]}}}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  if (interrupted()) return 130;
  if (harness_failure) return 2;
  return totals[Verdict::kFalsified] + totals[Verdict::kError] > 0 ? 1 : 0;
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
}

}  // namespace
POPPER_REGISTER_COMMAND(41, register_run);
}  // namespace popper::cli
