// `popper report [--evidence DIR] [-o DIR]`: the evidence as a self-contained HTML page
// (reports/index.html) and its Markdown twin (reports/report.md); prints the HTML path.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/core/atomic_file.h"
#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/contract/contract_set.h"
#include "harness/report/report.h"
#include "harness/run/fingerprint.h"
#include "harness/run/models.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct ReportArgs {
  std::string evidence_dir;
  std::string out_dir;
  std::vector<std::string> contracts;
  bool no_contracts = false;
  std::string build_dir;
};

int run_report(const ReportArgs& a) {
  const std::string root = find_repo_root(".");
  const std::string evidence =
      a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  const std::string out = a.out_dir.empty() ? (fs::path(root) / "reports").string() : a.out_dir;
  // The repository's contracts add those without evidence and mark stale evidence; with
  // --evidence pointing elsewhere they are only used when named.
  ContractSet set;
  if (!a.no_contracts && (!a.contracts.empty() || a.evidence_dir.empty())) {
    std::error_code ec;
    if (!a.contracts.empty() || fs::is_directory(fs::path(root) / "contracts", ec)) {
      auto files = expand_contract_paths(a.contracts, root);
      if (!files.ok()) {
        std::fprintf(stderr, "popper report: %s\n", files.message().c_str());
        return 2;
      }
      set = load_contract_set(*files);
      if (print_diagnostics(set.diagnostics(), false) > 0) {
        std::fprintf(stderr, "popper report: the contracts above have errors (see `popper validate`)\n");
        return 2;
      }
    }
  }
  // Items of known contracts are checked for staleness against this build (popper status).
  const RunOptions now = options_now(root, a.build_dir, "", "");
  std::function<Fingerprint(const Item&)> fingerprint_now;
  if (!set.contracts().empty())
    fingerprint_now = [&now](const Item& item) { return current_fingerprint(item, now); };
  auto rep = build_report(evidence, set.contracts(), fingerprint_now);
  if (!rep.ok()) {
    std::fprintf(stderr, "popper report: %s\n", rep.message().c_str());
    return 2;
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "popper report: %s: cannot create the directory: %s\n", out.c_str(),
                 ec.message().c_str());
    return 2;
  }
  const std::string html = (fs::path(out) / "index.html").string(),
                    md = (fs::path(out) / "report.md").string();
  for (const auto& [path, text] :
       {std::pair{html, render_report_html(*rep)}, std::pair{md, render_report_markdown(*rep)}}) {
    Status st = write_file_atomic(path, text);
    if (!st.ok()) {
      std::fprintf(stderr, "popper report: %s\n", st.message().c_str());
      return 2;
    }
  }
  int regressions = 0, unstable = 0, stale = 0;
  for (const auto& c : rep->contracts) {
    for (const auto& s : c.series) {
      regressions += s.change && s.change->kind == ChangeKind::kRegression && !s.unstable;
      unstable += s.unstable;
    }
    for (const auto& row : c.items) stale += !row.stale.empty();
  }
  std::fprintf(
      stderr,
      "popper report: %zu contracts, %d regression%s, %d unstable series, %d stale verdict%s; markdown %s\n",
      rep->contracts.size(), regressions, regressions == 1 ? "" : "s", unstable, stale, stale == 1 ? "" : "s",
      md.c_str());
  std::printf("%s\n", html.c_str());
  return 0;
}

void register_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd =
      add_command(app, "report", "Write an HTML report (and Markdown twin) of the evidence and its history",
                  [a] { return run_report(*a); });
  cmd->add_option("--evidence,--evidence-dir", a->evidence_dir,
                  "Evidence directory (default: <repo>/evidence)");
  cmd->add_option("-o,--out", a->out_dir, "Output directory (default: <repo>/reports)");
  cmd->add_option(
      "--contracts", a->contracts,
      "Contracts to list even without evidence (default: <repo>/contracts when --evidence is not given)");
  cmd->add_flag("--no-contracts", a->no_contracts, "Report the evidence alone");
  cmd->add_option("--build-dir", a->build_dir,
                  "Build directory whose falsifiers decide what is stale (default: this popper's)");
}

}  // namespace
POPPER_REGISTER_COMMAND(44, register_report);
}  // namespace popper::cli
