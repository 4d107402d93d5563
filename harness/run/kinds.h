// One strategy per binding kind (gtest, benchmark, command): where its executable lives, what it
// lists for a filter, how it is started, and how what it wrote becomes a verdict. The runner and
// `popper validate` ask the strategy; nothing else looks at a binding's kind.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "harness/contract/binding.h"
#include "harness/contract/verdict.h"
#include "harness/run/outputs.h"
#include "harness/run/process.h"
#include "harness/run/targets.h"

namespace popper::harness {

// What a finished child left for its kind to judge.
struct ChildRun {
  const Binding& binding;      // the effective binding (profile laid over it)
  const Binding& declared;     // the binding as the contract wrote it (all profiles' thresholds)
  const std::string& profile;  // "" when the binding defines none
  const ProcessResult& process;
  const std::string& stdout_path;
  std::string log_hint;  // " — last output: <line>" or ""
};

class KindStrategy {
 public:
  virtual ~KindStrategy() = default;

  // "test" / "benchmark" / "command": what one unit of this kind is called in messages.
  virtual const char* unit() const = 0;

  // The executable a binding runs, or where it was looked for (targets.h).
  virtual TargetLocation locate(const Binding& b, const std::string& build_dir,
                                const std::string& repo_root) const = 0;

  // Whether the kind's executables list what a filter matches (command: no).
  virtual bool lists_tests() const { return true; }
  // Names of the tests or benchmarks `exe` would run for `filter` (asks the binary).
  virtual Result<std::vector<std::string>> list(const std::string& exe, const std::string& filter) const = 0;

  // The child's argv. `out_json` is where it should write its machine-readable output; a kind
  // may name it to the child through `env` instead. `fail_fast`: stop at the first failure where
  // the kind can (a control needs one counterexample, not all of them).
  virtual std::vector<std::string> argv(const Binding& b, const std::string& exe, const std::string& out_json,
                                        bool fail_fast, std::map<std::string, std::string>& env) const = 0;

  // When the child wrote no output file: the verdict its exit status alone gives, or nullopt
  // when no output is an error for this kind.
  virtual std::optional<std::pair<Verdict, std::string>> judge_without_output(const ChildRun& run) const {
    (void)run;
    return std::nullopt;
  }

  // Parses the output file. `item_id` names the samples of a kind whose output has no names.
  virtual Result<ParsedOutput> parse(const std::string& text, const ChildRun& run,
                                     const std::string& item_id) const = 0;

  // Findings from the parsed output (failures, skips, errors, exit codes) before thresholds.
  virtual void interpret(const ParsedOutput& out, const ChildRun& run, Outcome& verdict,
                         nlohmann::json& detail) const = 0;

  // After the thresholds: a last word (a benchmark with nothing to hold its figures to).
  virtual void conclude(const ParsedOutput& out, const ChildRun& run, Outcome& verdict) const {
    (void)out;
    (void)run;
    (void)verdict;
  }

  // The reason of a survived verdict nothing else explained.
  virtual const char* default_reason() const { return "ran"; }
};

const KindStrategy& kind_strategy(BindingKind kind);

// The three strategies (kind_gtest.cpp, kind_benchmark.cpp, kind_command.cpp).
const KindStrategy& gtest_kind();
const KindStrategy& benchmark_kind();
const KindStrategy& command_kind();

}  // namespace popper::harness
