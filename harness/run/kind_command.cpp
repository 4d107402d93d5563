// kind: command — any program, argv as the contract gives it ("popper" is this binary, other
// relative paths are from the repository root). Exit 0 survived, 1 falsified, 77 inconclusive,
// anything else an error; it may write {"metrics": {...}} to $POPPER_METRICS_OUT for thresholds.
#include <filesystem>

#include "harness/run/kinds.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class CommandKind final : public KindStrategy {
 public:
  const char* unit() const override { return "command"; }

  TargetLocation locate(const Binding& b, const std::string&, const std::string& repo_root) const override {
    TargetLocation loc;
    if (b.command.empty()) {
      loc.reason = "kind: command has an empty command";
      return loc;
    }
    const std::string& arg0 = b.command[0];
    fs::path p = arg0 == "popper"               ? fs::path(self_exe_path())
                 : fs::path(arg0).is_absolute() ? fs::path(arg0)
                                                : fs::path(repo_root) / arg0;
    loc.path = p.string();
    loc.found = is_executable(loc.path);
    if (!loc.found) loc.reason = "command " + arg0 + " not found or not executable (" + loc.path + ")";
    return loc;
  }

  bool lists_tests() const override { return false; }
  Result<std::vector<std::string>> list(const std::string&, const std::string&) const override {
    return make_error("kind command has no test list");
  }

  std::vector<std::string> argv(const Binding& b, const std::string& exe, const std::string& out_json, bool,
                                std::map<std::string, std::string>& env) const override {
    std::vector<std::string> a = b.command;
    a[0] = exe;
    env["POPPER_METRICS_OUT"] = out_json;
    return a;
  }

  // A command without a metrics file decides by its exit code alone.
  std::optional<std::pair<Verdict, std::string>> judge_without_output(const ChildRun& run) const override {
    const ProcessResult& pr = run.process;
    if (!run.binding.thresholds.empty())
      return std::pair{Verdict::kError, "no metrics file written to $POPPER_METRICS_OUT" + run.log_hint};
    if (pr.exit_code == 0) return std::pair{Verdict::kSurvived, std::string("command exited 0")};
    if (pr.exit_code == 77)
      return std::pair{Verdict::kInconclusive, "command skipped (exit 77)" + run.log_hint};
    if (pr.exit_code == 1) return std::pair{Verdict::kFalsified, "command exited 1" + run.log_hint};
    return std::pair{Verdict::kError, pr.describe() + run.log_hint};
  }

  Result<ParsedOutput> parse(const std::string& text, const ChildRun&,
                             const std::string& item_id) const override {
    return parse_metrics_file(text, item_id);
  }

  void interpret(const ParsedOutput&, const ChildRun& run, Outcome& out, json&) const override {
    const ProcessResult& pr = run.process;
    if (pr.exit_code == 1)
      out.add(Verdict::kFalsified, "command exited 1" + run.log_hint);
    else if (pr.exit_code == 77)
      out.add(Verdict::kInconclusive, "command skipped (exit 77)" + run.log_hint);
    else if (pr.exit_code != 0)
      out.add(Verdict::kError, pr.describe() + run.log_hint);
  }

  const char* default_reason() const override { return "command exited 0"; }
};

}  // namespace

const KindStrategy& command_kind() {
  static const CommandKind k;
  return k;
}

}  // namespace popper::harness
