// `popper gate [PATHS]`: CI decision from the latest evidence: exit 0 every required item
// survived, 1 something was falsified / errored / inconclusive / stale, 2 harness or input error.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/core/atomic_file.h"
#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/contract/contract_set.h"
#include "harness/evidence/gate.h"
#include "harness/evidence/provenance.h"
#include "harness/report/gate_outputs.h"
#include "harness/run/fingerprint.h"
#include "harness/run/models.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct GateArgs {
  std::vector<std::string> paths;
  std::string evidence_dir;
  std::string junit;
  std::string markdown;
  bool allow_inconclusive = false;
  bool any_commit = false;
  bool require_controls = false;
  bool fresh = false;
  std::string build_dir;
  std::string profile;
};

int run_gate(const GateArgs& a) {
  const std::string root = find_repo_root(".");
  auto loaded = cli::load_checked_contracts(a.paths, root, "gate", "");
  if (!loaded) return 2;
  const ContractSet& set = *loaded;
  GateOptions opts;
  opts.evidence_dir = a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  opts.allow_inconclusive = a.allow_inconclusive;
  opts.require_controls = a.require_controls;
  const RunOptions now = options_now(root, a.build_dir, "", a.profile);  // for --fresh
  if (a.fresh) {
    opts.fingerprint_now = [&now](const Item& item) { return current_fingerprint(item, now); };
  }
  if (!a.any_commit) {
    GitState git = read_git_state(root, "");
    if (git.available) opts.head_commit = git.commit;
  }
  GateReport rep = evaluate_gate(set.contracts(), opts);
  if (rep.exit_code == 2) {
    std::fprintf(stderr, "popper gate: %s\n", rep.harness_error.c_str());
    return 2;
  }
  bool color = use_color(STDOUT_FILENO);
  for (const auto& c : rep.contracts) {
    std::printf("%s %s%s%s\n", c.name.c_str(), c.version.c_str(), c.evidence.empty() ? "" : "  (",
                c.evidence.empty() ? "" : (c.evidence + ")").c_str());
    if (!c.problem.empty()) std::printf("  ! %s\n", c.problem.c_str());
    for (const auto& i : c.items) {
      std::string control = i.control.present ? "  control " + i.control.label() : "";
      std::printf("  %s %s %s%s%s\n", i.blocks ? "✗" : " ", verdict_label(i.verdict, color).c_str(),
                  i.id.c_str(), i.required ? "" : "  (optional)", control.c_str());
      if (!i.blocked_by.empty()) std::printf("      %s\n", i.blocked_by.c_str());
    }
    if (c.controls_ran) std::printf("  sensitivity: %s\n", sensitivity_text(c).c_str());
  }
  for (const auto& [path, text] :
       {std::pair{a.junit, render_junit(rep)}, std::pair{a.markdown, render_markdown(rep)}}) {
    if (path.empty()) continue;
    Status st = write_file_atomic(path, text);
    if (!st.ok()) {
      std::fprintf(stderr, "popper gate: %s\n", st.message().c_str());
      return 2;
    }
  }
  if (rep.exit_code != 0) {
    std::printf("gate: FAIL (items marked ✗ block it)\n");
    return rep.exit_code;
  }
  // A pass with --allow-inconclusive must not read as "everything survived".
  int inconclusive_required = 0;
  for (const auto& c : rep.contracts)
    for (const auto& i : c.items) inconclusive_required += i.required && i.verdict == Verdict::kInconclusive;
  if (inconclusive_required == 0)
    std::printf("gate: PASS (every required item survived)\n");
  else
    std::printf(
        "gate: PASS (no required item falsified or errored; %d required item%s inconclusive, allowed)\n",
        inconclusive_required, inconclusive_required == 1 ? "" : "s");
  return rep.exit_code;
}

void register_gate(CLI::App& app) {
  auto a = std::make_shared<GateArgs>();
  CLI::App* cmd =
      add_command(app, "gate", "CI gate on the latest evidence: exit 0 pass, 1 fail, 2 harness error",
                  [a] { return run_gate(*a); });
  cmd->add_option("paths", a->paths, "Contract files or directories (default: <repo>/contracts)");
  cmd->add_option("--evidence-dir", a->evidence_dir, "Evidence directory (default: <repo>/evidence)");
  cmd->add_option("--junit", a->junit, "Also write a JUnit XML report here");
  cmd->add_option("--markdown", a->markdown,
                  "Also write a Markdown summary here (for a pull-request comment)");
  cmd->add_flag("--allow-inconclusive", a->allow_inconclusive,
                "Let inconclusive required items pass (still listed)");
  cmd->add_flag("--any-commit", a->any_commit, "Accept evidence produced from another commit");
  cmd->add_flag("--require-controls", a->require_controls,
                "Fail a survived required item whose evidence shows no control run (popper run --controls)");
  cmd->add_flag(
      "--fresh", a->fresh,
      "Fail required items whose verdict is stale: the item, its falsifier binary, its model or its "
      "profile changed since (popper status lists them)");
  cmd->add_option("--build-dir", a->build_dir, "Build directory for --fresh (default: this popper's)");
  cmd->add_option("--profile", a->profile, "Profile --fresh compares with (default: each item's first)");
}

}  // namespace
POPPER_REGISTER_COMMAND(42, register_gate);
}  // namespace popper::cli
