#include "harness/run/runner.h"

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "harness/evidence/provenance.h"
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
  j["kind"] = b.kind;
  if (!b.target.empty()) j["target"] = b.target;
  if (!b.filter.empty()) j["filter"] = b.filter;
  if (!b.command.empty()) j["command"] = b.command;
  j["requires"] = b.requires_;
  if (!b.model.empty()) j["model"] = b.model;
  j["timeout_s"] = b.timeout_s;
  if (b.kind == "benchmark") j["repetitions"] = b.repetitions;
  if (b.seed) j["seed"] = *b.seed;
  if (!b.env.empty()) j["env"] = b.env;
  return j;
}

json threshold_json(const Threshold& t) {
  return {{"metric", t.metric},         {"op", t.op},          {"value", t.value}, {"statistic", t.statistic},
          {"confidence", t.confidence}, {"profile", t.profile}};
}

// First lines of a failure message, trimmed and joined with " | ": enough to read in a terminal;
// the whole message is in the evidence.
std::string first_lines(const std::string& s, int n) {
  std::string out, line;
  int lines = 0;
  std::istringstream in(s);
  while (lines < n && std::getline(in, line)) {
    size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos) continue;
    out += (out.empty() ? "" : " | ") + line.substr(a, line.find_last_not_of(" \t\r") - a + 1);
    ++lines;
  }
  return out;
}

std::string last_line(const std::string& s) {
  auto end = s.find_last_not_of(" \r\n");
  if (end == std::string::npos) return "";
  auto start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1,
                  end - (start == std::string::npos ? 0 : start + 1) + 1);
}

struct Outcome {
  Verdict verdict = Verdict::kSurvived;
  std::string reason;
  void add(Verdict v, const std::string& why) {
    Verdict combined = combine_verdicts(verdict, v);
    if (v == verdict)
      reason += (reason.empty() ? "" : "; ") + why;  // same verdict: reasons accumulate
    else if (combined == v)
      reason = why;  // a stronger verdict takes over
    verdict = combined;
  }
};

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

void interpret_gtest(const ParsedOutput& p, const EffectiveBinding& eb, const ProcessResult& pr, Outcome& out,
                     json& detail) {
  json tests = json::array();
  int ran = 0, passed = 0, failed = 0, skipped = 0;
  std::set<std::string> skip_reasons;
  std::string first_failure;
  for (const auto& t : p.tests) {
    tests.push_back({{"name", t.name},
                     {"status", t.status},
                     {"time_s", t.time_s},
                     {"failures", t.failures},
                     {"skip_reason", t.skip_reason},
                     {"properties", t.properties}});
    if (t.status == "not_run") continue;
    ++ran;
    if (t.status == "passed") ++passed;
    if (t.status == "skipped") {
      ++skipped;
      skip_reasons.insert(t.skip_reason);
    }
    if (t.status == "failed") {
      ++failed;
      if (first_failure.empty())
        first_failure = t.name + ": " + first_lines(t.failures.empty() ? "" : t.failures[0], 8);
    }
  }
  detail["tests"] = tests;
  detail["counts"] = {{"ran", ran}, {"passed", passed}, {"failed", failed}, {"skipped", skipped}};
  if (ran == 0) {
    out.add(Verdict::kError, "filter '" + eb.binding.filter + "' matched no tests in " + eb.binding.target);
    return;
  }
  if (failed > 0) {
    out.add(Verdict::kFalsified,
            std::to_string(failed) + " of " + std::to_string(ran) + " tests failed: " + first_failure);
  } else if (pr.exit_code != 0) {
    out.add(Verdict::kError, "exit code " + std::to_string(pr.exit_code) + " although no test failed");
  }
  if (skipped > 0) {
    std::string why;
    for (const auto& r : skip_reasons) why += (why.empty() ? "" : "; ") + r;
    out.add(Verdict::kInconclusive,
            (skipped == ran ? std::string("skipped: ")
                            : std::to_string(skipped) + " of " + std::to_string(ran) + " tests skipped: ") +
                why);
  }
  if (out.verdict == Verdict::kSurvived && eb.binding.thresholds.empty())
    out.reason = std::to_string(passed) + (passed == 1 ? " test passed" : " tests passed");
}

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

ItemResult run_item(const Contract& contract, const Item& item, const RunOptions& opts) {
  ItemResult r;
  r.contract = contract.name;
  r.id = item.id;
  r.description = item.description;
  r.required = item.required && item.blocked_on.empty();
  r.started_at = utc_timestamp_iso();
  auto t0 = std::chrono::steady_clock::now();
  auto finish = [&](Verdict v, const std::string& reason) {
    r.verdict = v;
    r.reason = reason;
    r.finished_at = utc_timestamp_iso();
    r.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  if (!item.blocked_on.empty()) r.detail["blocked_on"] = item.blocked_on;
  const std::string blocked = item.blocked_on.empty() ? "" : "blocked on " + item.blocked_on + ": ";
  if (!item.falsifier) return finish(Verdict::kInconclusive, blocked + "no falsifier binding");

  EffectiveBinding eb = effective_binding(*item.falsifier, opts.profile);
  const Binding& b = eb.binding;
  r.profile = eb.profile;
  r.detail["binding"] = binding_json(b);
  r.detail["profile"] = eb.profile;

  TargetLocation loc = locate_target(b, opts.build_dir, opts.repo_root);
  r.detail["executable"] = loc.path;
  if (!loc.found) return finish(Verdict::kInconclusive, blocked + loc.reason);

  for (const auto& req : b.requires_) {
    if (req == "gpu") {
      if (!opts.gpu.present)
        return finish(Verdict::kInconclusive, "needs a CUDA GPU; none found (" + opts.gpu.how + ")");
    } else {
      return finish(Verdict::kError, "unknown requirement '" + req + "' (expected gpu or model:<name>)");
    }
  }

  // Per-item scratch directory for logs and outputs.
  fs::path dir = fs::path(opts.work_dir) / item.id;
  std::error_code ec;
  fs::create_directories(dir, ec);

  std::map<std::string, std::string> env = b.env;
  if (!b.model.empty()) {
    auto spec = resolve_model(b.model, opts.model_cache, opts.repo_root);
    if (!spec.ok()) return finish(Verdict::kError, spec.message());
    json mj{{"name", spec->name}, {"path", spec->path}};
    if (!spec->is_path) mj["synth_args"] = spec->synth_args;
    if (!fs::exists(spec->path)) {
      if (spec->is_path) {
        r.detail["model"] = mj;
        return finish(Verdict::kInconclusive, "model file " + spec->path + " does not exist");
      }
      bool may_build = !spec->large || opts.build_models || eb.profile_explicit;
      if (!may_build) {
        r.detail["model"] = mj;
        return finish(Verdict::kInconclusive, "model " + spec->name + " is not in the cache (" + spec->path +
                                                  "); it is large, so pass --build-models or --profile " +
                                                  eb.profile + " to build it");
      }
      Status st = build_model(*spec, opts.popper_exe, (dir / "synth.log").string(),
                              spec->large ? kLargeModelBuildTimeoutS : kTinyModelBuildTimeoutS);
      if (!st.ok()) {
        r.detail["model"] = mj;
        return finish(Verdict::kInconclusive, "model " + spec->name + " not available: " + st.message());
      }
      mj["built_now"] = true;
    }
    auto sha = model_sha256(spec->path);
    if (!sha.ok()) return finish(Verdict::kError, sha.message());
    mj["sha256"] = *sha;
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
    r.detail["model"] = mj;
    env["POPPER_MODEL"] = spec->path;
    env["POPPER_MODEL_NAME"] = spec->name;
    env["POPPER_MODEL_SHA256"] = *sha;
  }
  if (b.seed) env["POPPER_SEED"] = std::to_string(*b.seed);
  env["POPPER_BIN"] = opts.popper_exe;
  env["POPPER_BUILD_DIR"] = opts.build_dir;
  env["POPPER_SOURCE_DIR"] = opts.repo_root;
  env["POPPER_ITEM_ID"] = item.id;
  env["POPPER_PROFILE"] = eb.profile;

  SpawnOptions so;
  so.stdout_path = (dir / "stdout.log").string();
  so.stderr_path = (dir / "stderr.log").string();
  so.timeout_s = b.timeout_s;
  so.on_tick = opts.on_tick;
  so.cwd = opts.repo_root;
  const std::string out_json = (dir / "output.json").string();
  fs::remove(out_json, ec);
  if (b.kind == "gtest") {
    so.argv = {loc.path, "--gtest_output=json:" + out_json, "--gtest_color=no"};
    if (!b.filter.empty()) so.argv.push_back("--gtest_filter=" + b.filter);
  } else if (b.kind == "benchmark") {
    so.argv = {loc.path,
               "--benchmark_out=" + out_json,
               "--benchmark_out_format=json",
               "--benchmark_repetitions=" + std::to_string(b.repetitions),
               "--benchmark_enable_random_interleaving=true",
               "--benchmark_color=false"};
    if (!b.filter.empty()) so.argv.push_back("--benchmark_filter=" + b.filter);
  } else {
    so.argv = b.command;
    so.argv[0] = loc.path;
    env["POPPER_METRICS_OUT"] = out_json;
  }
  so.env_extra = env;
  json env_json = env;
  r.detail["env"] = env_json;
  r.detail["argv"] = so.argv;

  ProcessResult pr = run_process(so);
  r.detail["process"] = {{"exit_code", pr.exit_code},
                         {"signal", pr.signal},
                         {"timed_out", pr.timed_out},
                         {"elapsed_s", pr.elapsed_s},
                         {"described", pr.describe()}};
  std::string out_tail = file_tail(so.stdout_path, kLogTailBytes);
  std::string err_tail = file_tail(so.stderr_path, kLogTailBytes);
  r.detail["log_tail"] = {{"stdout", out_tail}, {"stderr", err_tail}};
  auto log_hint = [&] {
    std::string l = last_line(err_tail);
    if (l.empty()) l = last_line(out_tail);
    return l.empty() ? std::string() : " — last output: " + l.substr(0, 200);
  };
  if (!pr.started) return finish(Verdict::kError, pr.describe());
  if (pr.timed_out) return finish(Verdict::kError, pr.describe() + log_hint());
  if (pr.signal != 0) return finish(Verdict::kError, "crashed: " + pr.describe() + log_hint());

  Outcome out;
  auto out_text = read_file(out_json);
  if (b.kind == "command" && !out_text.ok()) {
    // A command without a metrics file decides by its exit code alone.
    if (!b.thresholds.empty())
      return finish(Verdict::kError, "no metrics file written to $POPPER_METRICS_OUT" + log_hint());
    if (pr.exit_code == 0) return finish(Verdict::kSurvived, "command exited 0");
    if (pr.exit_code == 77) return finish(Verdict::kInconclusive, "command skipped (exit 77)" + log_hint());
    if (pr.exit_code == 1) return finish(Verdict::kFalsified, "command exited 1" + log_hint());
    return finish(Verdict::kError, pr.describe() + log_hint());
  }
  if (!out_text.ok())
    return finish(Verdict::kError,
                  pr.describe() + ", and no " + b.kind + " JSON output was written" + log_hint());
  Result<ParsedOutput> parsed = b.kind == "gtest"
                                    ? parse_gtest_output(*out_text, file_tail(so.stdout_path, 1 << 20))
                                : b.kind == "benchmark" ? parse_benchmark_output(*out_text)
                                                        : parse_metrics_file(*out_text, item.id);
  if (!parsed.ok())
    return finish(Verdict::kError, "unparsable output (" + pr.describe() + "): " + parsed.message());
  r.detail["samples"] = metrics_json(parsed->metrics);

  if (b.kind == "gtest") {
    interpret_gtest(*parsed, eb, pr, out, r.detail);
  } else if (b.kind == "benchmark") {
    if (!parsed->context.empty()) r.detail["benchmark_context"] = parsed->context;
    for (const auto& e : parsed->errors) out.add(Verdict::kError, "benchmark error: " + e);
    for (const auto& e : parsed->inconclusive) out.add(Verdict::kInconclusive, e);
    if (parsed->metrics.empty() && parsed->errors.empty() && parsed->inconclusive.empty())
      out.add(Verdict::kError, "filter '" + b.filter + "' matched no benchmarks in " + b.target);
    else if (pr.exit_code != 0)
      out.add(Verdict::kError, "exit code " + std::to_string(pr.exit_code));
  } else {
    if (pr.exit_code == 1)
      out.add(Verdict::kFalsified, "command exited 1" + log_hint());
    else if (pr.exit_code == 77)
      out.add(Verdict::kInconclusive, "command skipped (exit 77)" + log_hint());
    else if (pr.exit_code != 0)
      out.add(Verdict::kError, pr.describe() + log_hint());
  }
  // Thresholds are judged when the run itself decided something; a skip or a broken run has no
  // figures worth judging.
  if (!b.thresholds.empty() && (out.verdict == Verdict::kSurvived || out.verdict == Verdict::kFalsified)) {
    judge_thresholds(b.thresholds, parsed->metrics, out, r.detail);
  }
  if (b.kind == "benchmark" && b.thresholds.empty() && out.verdict == Verdict::kSurvived) {
    // Figures with nothing to hold them to under this profile: recorded, but no claim was tested.
    std::string figures;
    for (const Threshold& t : item.falsifier->thresholds)
      for (const auto& [source, table] : parsed->metrics)
        if (auto it = table.find(t.metric); it != table.end() && figures.find(t.metric) == std::string::npos)
          figures += (figures.empty() ? "" : ", ") + t.metric + " median " + fmt_num(median(it->second));
    out.verdict = Verdict::kInconclusive;
    out.reason = "no threshold applies under profile '" + eb.profile + "'" +
                 (figures.empty() ? "" : "; recorded " + figures) + " (figures in the evidence)";
  }
  if (out.reason.empty()) out.reason = b.kind == "command" ? "command exited 0" : "ran";
  return finish(out.verdict, out.reason);
}

}  // namespace popper::harness
