// Runs the falsifier bound to each item in its own process and decides the item's verdict.
//
// Order of checks for one item (the first that applies decides, see contracts/README.md):
//   no binding -> inconclusive; target not built -> inconclusive (with the blocker if any);
//   needs a GPU and none -> inconclusive; model absent and not buildable -> inconclusive;
//   then the process runs: crash / timeout / unparsable output -> error; zero tests matched ->
//   error; a failed assertion -> falsified; a skip -> inconclusive with its reason; thresholds
//   judged on a confidence interval (harness/stats/stats.h); otherwise survived.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/contract/contract.h"
#include "harness/contract/verdict.h"
#include "harness/run/targets.h"

namespace popper::harness {

// An item's negative control as it ran (controls.h): the check again, with engine faults on.
struct ControlResult {
  std::vector<std::string> faults;
  std::string filter;                        // the control's own filter, when it narrows the item's
  bool ran = false;                          // false: not needed (the item did not survive) or not asked for
  Verdict verdict = Verdict::kInconclusive;  // of the control run; kFalsified is the wanted outcome
  std::string reason;
  double duration_s = 0;
  std::string started_at, finished_at;
  nlohmann::json detail = nlohmann::json::object();  // the control run's process, tests, samples, logs

  // The item's check passed with the faults on: it cannot fail.
  bool unfalsifiable() const { return ran && verdict == Verdict::kSurvived; }
};

struct ItemResult {
  std::string contract;
  std::string id;
  std::string description;
  bool required = true;
  Verdict verdict = Verdict::kError;
  std::string reason;   // one line a reader understands without the log
  std::string profile;  // the profile that ran ("" when the binding has none)
  double duration_s = 0;
  std::string started_at, finished_at;
  nlohmann::json detail = nlohmann::json::object();  // binding, command, process, tests, samples,
                                                     // thresholds, model, logs, fingerprint
  std::optional<ControlResult> control;              // with --controls, for an item that has one
};

struct RunOptions {
  std::string build_dir;
  std::string repo_root;
  std::string model_cache;
  std::string work_dir;                // logs and outputs of the children go under here
  std::string popper_exe;              // passed to falsifiers as POPPER_BIN and used for `synth`
  std::optional<std::string> profile;  // --profile
  bool build_models = false;           // --build-models: build large synthetic models too
  GpuInfo gpu;
  bool controls = false;  // --controls: run each item's control after it (controls.h)
  // --model NAME=PATH: the file that stands in for a model a contract names (models.h).
  std::map<std::string, std::string> model_overrides;
  // Live progress: called every ~100 ms with the elapsed seconds of the running item.
  std::function<void(double)> on_tick;
};

// The binding with the chosen profile laid over it and the thresholds that apply under it.
struct EffectiveBinding {
  Binding binding;
  std::string profile;            // "" when the binding defines no profiles
  bool profile_explicit = false;  // chosen with --profile (so its large models may be built)
};
EffectiveBinding effective_binding(const Binding& b, const std::optional<std::string>& profile);

// A second run of an item's check under engine faults: its negative control (controls.h).
struct RunVariant {
  std::vector<std::string> faults;  // POPPER_FAULTS for the child
  std::string filter;               // replaces the binding's filter when not empty
  std::optional<int> repetitions;   // replaces a benchmark binding's repetitions when set
  bool fail_fast = true;            // stop at the first failed test: one counterexample is enough
  std::string scratch = "control";  // sub-directory of the item's scratch directory
};

// Runs the item's check (or, with `variant`, its control run) and decides the verdict.
ItemResult run_item(const Contract& contract, const Item& item, const RunOptions& opts,
                    const RunVariant* variant = nullptr);

}  // namespace popper::harness
