#include "harness/run/runner.h"

#include <chrono>
#include <filesystem>

#include "engine/core/atomic_file.h"
#include "harness/run/clock.h"
#include "harness/run/fingerprint.h"
#include "harness/run/kinds.h"
#include "harness/run/models.h"
#include "harness/run/outputs.h"
#include "harness/run/process.h"
#include "harness/stats/stats.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kLogTailBytes = 4096;  // log excerpt kept in evidence per stream
constexpr double kTinyModelBuildTimeoutS = 600;
constexpr double kLargeModelBuildTimeoutS = 4 * 3600;

json binding_json(const Binding& b) {
  json j;
  j["kind"] = binding_kind_name(*b.kind);
  if (!b.target.empty()) j["target"] = b.target;
  if (!b.filter.empty()) j["filter"] = b.filter;
  if (!b.command.empty()) j["command"] = b.command;
  j["requires"] = b.requires_;
  if (!b.model.empty()) j["model"] = b.model;
  j["timeout_s"] = b.timeout_s;
  if (b.is(BindingKind::kBenchmark)) j["repetitions"] = b.repetitions;
  if (b.seed) j["seed"] = *b.seed;
  if (!b.env.empty()) j["env"] = b.env;
  return j;
}

json threshold_json(const Threshold& t) {
  return {{"metric", t.metric},         {"op", threshold_op_name(t.op)},
          {"value", t.value},           {"statistic", statistic_name(t.statistic)},
          {"confidence", t.confidence}, {"profile", t.profile}};
}

std::string last_line(const std::string& s) {
  auto end = s.find_last_not_of(" \r\n");
  if (end == std::string::npos) return "";
  auto start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1,
                  end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// Judges the thresholds against the reported metrics. Every threshold must find its metric in
// at least one source (test or benchmark); each source that reports it is judged.
void judge_thresholds(const std::vector<Threshold>& thresholds, const MetricTable& metrics, Outcome& out,
                      json& detail) {
  json arr = json::array();
  for (const Threshold& t : thresholds) {
    bool found = false;
    for (const auto& [source, table] : metrics) {
      auto it = table.find(t.metric);
      if (it == table.end()) continue;
      found = true;
      ThresholdJudgement j = judge_threshold(t, it->second);
      Verdict v = j.verdict == ThresholdVerdict::kSurvived    ? Verdict::kSurvived
                  : j.verdict == ThresholdVerdict::kFalsified ? Verdict::kFalsified
                                                              : Verdict::kInconclusive;
      json tj = threshold_json(t);
      tj["source"] = source;
      tj["n"] = j.n;
      tj["point"] = j.point;
      tj["ci_low"] = j.ci_low;
      tj["ci_high"] = j.ci_high;
      tj["verdict"] = verdict_name(v);
      tj["reason"] = j.reason;
      arr.push_back(tj);
      out.add(v, (metrics.size() > 1 ? source + ": " : "") + j.reason);
    }
    if (!found) {
      json tj = threshold_json(t);
      tj["verdict"] = "error";
      tj["reason"] = "metric not reported";
      arr.push_back(tj);
      out.add(Verdict::kError, "metric '" + t.metric + "' was not reported by the falsifier");
    }
  }
  detail["thresholds"] = arr;
}

json metrics_json(const MetricTable& m) {
  json j = json::object();
  for (const auto& [source, table] : m)
    for (const auto& [metric, samples] : table) j[source][metric] = samples;
  return j;
}

// A verdict reached before the end: the first stage that decides the item wins.
struct Decided {
  Verdict verdict;
  std::string reason;
};

// One item, from its binding to its verdict, in stages: runnable here? -> model ready? ->
// child process -> the kind's judgement of what it wrote.
class ItemRun {
 public:
  ItemRun(const Contract& contract, const Item& item, const RunOptions& opts, const RunVariant* variant)
      : item_(item), opts_(opts), variant_(variant), t0_(std::chrono::steady_clock::now()) {
    r_.contract = contract.name;
    r_.id = item.id;
    r_.description = item.description;
    r_.required = item.required && item.blocked_on.empty();
    r_.started_at = utc_timestamp_iso();
    if (!item.blocked_on.empty()) r_.detail["blocked_on"] = item.blocked_on;
  }

  ItemResult run() {
    fingerprint_.item_sha256 = item_.text_sha256;
    if (auto d = check_runnable()) return finish(*d);
    // Per-item scratch directory for logs and outputs.
    dir_ = fs::path(opts_.work_dir) / item_.id;
    if (variant_) dir_ /= variant_->scratch;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    env_ = eb_.binding.env;
    if (auto d = prepare_model()) return finish(*d);
    return finish(run_child());
  }

 private:
  ItemResult finish(const Decided& d) {
    r_.verdict = d.verdict;
    r_.reason = d.reason;
    r_.finished_at = utc_timestamp_iso();
    r_.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    r_.detail["fingerprint"] = fingerprint_.to_json();
    return r_;
  }

  std::string blocked_prefix() const {
    return item_.blocked_on.empty() ? "" : "blocked on " + item_.blocked_on + ": ";
  }

  // Binding, profile, target and requirements: can this machine run the check at all?
  std::optional<Decided> check_runnable() {
    if (!item_.falsifier) return Decided{Verdict::kInconclusive, blocked_prefix() + "no falsifier binding"};
    eb_ = effective_binding(*item_.falsifier, opts_.profile);
    if (variant_ && !variant_->filter.empty()) eb_.binding.filter = variant_->filter;
    if (variant_ && variant_->repetitions) eb_.binding.repetitions = *variant_->repetitions;
    const Binding& b = eb_.binding;
    r_.profile = eb_.profile;
    fingerprint_.profile = eb_.profile;
    fingerprint_.model = b.model;
    r_.detail["binding"] = binding_json(b);
    r_.detail["profile"] = eb_.profile;
    kind_ = &kind_strategy(*b.kind);
    loc_ = kind_->locate(b, opts_.build_dir, opts_.repo_root);
    r_.detail["executable"] = loc_.path;
    fingerprint_.falsifier = loc_.path;
    if (!loc_.found) return Decided{Verdict::kInconclusive, blocked_prefix() + loc_.reason};
    auto exe_sha = file_sha256_memo(loc_.path);
    if (!exe_sha.ok()) return Decided{Verdict::kError, exe_sha.message()};
    fingerprint_.falsifier_sha256 = *exe_sha;
    for (const auto& req : b.requires_) {
      if (req != "gpu")
        return Decided{Verdict::kError, "unknown requirement '" + req + "' (expected gpu or model:<name>)"};
      if (!opts_.gpu.present)
        return Decided{Verdict::kInconclusive, "needs a CUDA GPU; none found (" + opts_.gpu.how + ")"};
    }
    return std::nullopt;
  }

  // The model the item names: resolved, built when missing and allowed, hashed, described; its
  // path and digest go to the child's environment.
  std::optional<Decided> prepare_model() {
    const Binding& b = eb_.binding;
    if (b.model.empty()) return std::nullopt;
    auto spec = resolve_model_for_run(b.model, opts_.model_cache, opts_.repo_root, opts_.model_overrides);
    if (!spec.ok()) return Decided{Verdict::kError, spec.message()};
    json mj{{"name", spec->name}, {"path", spec->path}};
    if (!spec->is_path) mj["synth_args"] = spec->synth_args;
    if (spec->substituted) mj["substituted"] = true;  // --model NAME=PATH
    if (!fs::exists(spec->path)) {
      r_.detail["model"] = mj;
      if (spec->is_path)
        return Decided{Verdict::kInconclusive, "model file " + spec->path + " does not exist"};
      bool may_build = !spec->large || opts_.build_models || eb_.profile_explicit;
      if (!may_build)
        return Decided{Verdict::kInconclusive, "model " + spec->name + " is not in the cache (" + spec->path +
                                                   "); it is large, so pass --build-models or --profile " +
                                                   eb_.profile + " to build it"};
      Status st = build_model(*spec, opts_.popper_exe, (dir_ / "synth.log").string(),
                              spec->large ? kLargeModelBuildTimeoutS : kTinyModelBuildTimeoutS);
      if (!st.ok())
        return Decided{Verdict::kInconclusive, "model " + spec->name + " not available: " + st.message()};
      mj["built_now"] = true;
    }
    auto sha = model_sha256(spec->path);
    if (!sha.ok()) return Decided{Verdict::kError, sha.message()};
    mj["sha256"] = *sha;
    fingerprint_.model_sha256 = *sha;
    if (auto facts = read_model_facts(spec->path); facts.ok()) {
      mj["arch"] = facts->arch;
      mj["shape"] = facts->shape;
      mj["file_size"] = facts->file_size;
    } else {
      mj["facts_error"] = facts.message();
    }
    if (!spec->is_path) {
      mj["arch_requested"] = spec->arch;
      mj["preset"] = spec->preset;
      mj["quant"] = spec->quant;
      if (spec->seed) mj["seed"] = *spec->seed;
    }
    r_.detail["model"] = mj;
    env_["POPPER_MODEL"] = spec->path;
    env_["POPPER_MODEL_NAME"] = spec->name;
    env_["POPPER_MODEL_SHA256"] = *sha;
    return std::nullopt;
  }

  // Starts the falsifier in its own process group and judges what it left.
  Decided run_child() {
    const Binding& b = eb_.binding;
    if (b.seed) env_["POPPER_SEED"] = std::to_string(*b.seed);
    env_["POPPER_BIN"] = opts_.popper_exe;
    env_["POPPER_BUILD_DIR"] = opts_.build_dir;
    env_["POPPER_SOURCE_DIR"] = opts_.repo_root;
    env_["POPPER_ITEM_ID"] = item_.id;
    env_["POPPER_PROFILE"] = eb_.profile;
    if (variant_) {
      env_["POPPER_FAULTS"] = join(variant_->faults, ",");
    }

    SpawnOptions so;
    so.stdout_path = (dir_ / "stdout.log").string();
    so.stderr_path = (dir_ / "stderr.log").string();
    so.timeout_s = b.timeout_s;
    so.on_tick = opts_.on_tick;
    so.cwd = opts_.repo_root;
    const std::string out_json = (dir_ / "output.json").string();
    std::error_code ec;
    fs::remove(out_json, ec);
    so.argv = kind_->argv(b, loc_.path, out_json, variant_ && variant_->fail_fast, env_);
    so.env_extra = env_;
    json env_json = env_;
    r_.detail["env"] = env_json;
    r_.detail["argv"] = so.argv;

    ProcessResult pr = run_process(so);
    r_.detail["process"] = {{"exit_code", pr.exit_code},
                            {"signal", pr.signal},
                            {"timed_out", pr.timed_out},
                            {"elapsed_s", pr.elapsed_s},
                            {"described", pr.describe()}};
    std::string out_tail = file_tail(so.stdout_path, kLogTailBytes);
    std::string err_tail = file_tail(so.stderr_path, kLogTailBytes);
    r_.detail["log_tail"] = {{"stdout", out_tail}, {"stderr", err_tail}};
    std::string l = last_line(err_tail);
    if (l.empty()) l = last_line(out_tail);
    const std::string hint = l.empty() ? std::string() : " — last output: " + l.substr(0, 200);
    if (!pr.started) return {Verdict::kError, pr.describe()};
    if (pr.timed_out) return {Verdict::kError, pr.describe() + hint};
    if (pr.signal != 0) return {Verdict::kError, "crashed: " + pr.describe() + hint};
    return judge(ChildRun{b, *item_.falsifier, eb_.profile, pr, so.stdout_path, hint}, out_json);
  }

  // What the child wrote, as its kind reads it, then the thresholds.
  Decided judge(const ChildRun& child, const std::string& out_json) {
    const Binding& b = child.binding;
    auto out_text = read_file(out_json);
    if (!out_text.ok()) {
      if (auto d = kind_->judge_without_output(child)) return {d->first, d->second};
      return {Verdict::kError, child.process.describe() + ", and no " + binding_kind_name(*b.kind) +
                                   " JSON output was written" + child.log_hint};
    }
    Result<ParsedOutput> parsed = kind_->parse(*out_text, child, item_.id);
    if (!parsed.ok())
      return {Verdict::kError, "unparsable output (" + child.process.describe() + "): " + parsed.message()};
    r_.detail["samples"] = metrics_json(parsed->metrics);
    Outcome out;
    kind_->interpret(*parsed, child, out, r_.detail);
    // Thresholds are judged when the run itself decided something; a skip or a broken run has no
    // figures worth judging.
    if (!b.thresholds.empty() && (out.verdict == Verdict::kSurvived || out.verdict == Verdict::kFalsified))
      judge_thresholds(b.thresholds, parsed->metrics, out, r_.detail);
    kind_->conclude(*parsed, child, out);
    if (out.reason.empty()) out.reason = kind_->default_reason();
    return {out.verdict, out.reason};
  }

  const Item& item_;
  const RunOptions& opts_;
  const RunVariant* variant_;
  Fingerprint fingerprint_;
  const std::chrono::steady_clock::time_point t0_;
  ItemResult r_;
  EffectiveBinding eb_;
  const KindStrategy* kind_ = nullptr;
  TargetLocation loc_;
  fs::path dir_;
  std::map<std::string, std::string> env_;
};

}  // namespace

EffectiveBinding effective_binding(const Binding& b, const std::optional<std::string>& profile) {
  EffectiveBinding eb;
  eb.binding = b;
  eb.binding.profiles.clear();
  const Profile* chosen = nullptr;
  if (!b.profiles.empty()) {
    chosen = &b.profiles.front();
    if (profile) {
      for (const auto& p : b.profiles)
        if (p.name == *profile) {
          chosen = &p;
          eb.profile_explicit = true;
        }
    }
  }
  std::string active = chosen ? chosen->name : (profile ? *profile : "");
  if (chosen) {
    eb.profile = chosen->name;
    if (chosen->model) eb.binding.model = *chosen->model;
    if (!chosen->requires_.empty()) eb.binding.requires_ = chosen->requires_;
    if (chosen->timeout_s) eb.binding.timeout_s = *chosen->timeout_s;
    if (chosen->repetitions) eb.binding.repetitions = *chosen->repetitions;
    for (const auto& [k, v] : chosen->env) eb.binding.env[k] = v;
  }
  std::vector<Threshold> ts;
  for (const auto& t : b.thresholds)
    if (t.profile.empty() || t.profile == active) ts.push_back(t);
  eb.binding.thresholds = ts;
  // "model:<name>" in requires is the same as `model: <name>`.
  std::vector<std::string> reqs;
  for (const auto& r : eb.binding.requires_) {
    if (r.rfind("model:", 0) == 0) {
      if (eb.binding.model.empty()) eb.binding.model = r.substr(6);
    } else {
      reqs.push_back(r);
    }
  }
  eb.binding.requires_ = reqs;
  return eb;
}

ItemResult run_item(const Contract& contract, const Item& item, const RunOptions& opts,
                    const RunVariant* variant) {
  return ItemRun(contract, item, opts, variant).run();
}

}  // namespace popper::harness
