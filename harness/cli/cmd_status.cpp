// `popper status [PATHS] [--profile P]`: each item's latest verdict and control, and whether the
// verdict is still fresh (the item, its falsifier binary, its model and its profile are what
// decided it) or stale, with why. Exit 0 every item fresh, 1 any stale or never recorded, 2 bad
// input.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/evidence/status.h"
#include "harness/run/fingerprint.h"
#include "harness/run/models.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct StatusArgs {
  std::vector<std::string> paths;
  std::string evidence_dir;
  std::string build_dir;
  std::string model_cache;
  std::string profile;
};

int run_status(const StatusArgs& a) {
  const std::string root = find_repo_root(".");
  auto loaded = cli::load_checked_contracts(a.paths, root, "status", "");
  if (!loaded) return 2;
  const RunOptions now = options_now(root, a.build_dir, a.model_cache, a.profile);
  const std::string evidence =
      a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  auto rep = evaluate_status(loaded->contracts(), evidence,
                             [&now](const Item& item) { return current_fingerprint(item, now); });
  if (!rep.ok()) {
    std::fprintf(stderr, "popper status: %s\n", rep.message().c_str());
    return 2;
  }
  const bool color = use_color(STDOUT_FILENO);
  size_t id_width = 0;
  for (const auto& c : rep->contracts)
    for (const auto& i : c.items) id_width = std::max(id_width, i.id.size());
  for (const auto& c : rep->contracts) {
    std::printf(
        "%s %s  %s\n", c.name.c_str(), c.version.c_str(),
        c.evidence.empty() ? "(no evidence)" : ("(" + c.evidence + ", commit " + c.commit + ")").c_str());
    for (const auto& i : c.items) {
      std::string verdict = i.recorded
                                ? verdict_label(parse_verdict(i.verdict).value_or(Verdict::kError), color)
                                : "not run     ";
      std::string control = i.control.present ? "control " + i.control.label() : "no control";
      std::string state = !i.recorded ? "never recorded"
                          : i.fresh() ? "fresh"
                                      : "stale: " + [&] {
                                          std::string s;
                                          for (const auto& w : i.stale) s += (s.empty() ? "" : "; ") + w;
                                          return s;
                                        }();
      std::printf("  %s %-*s  %-34s %s\n", verdict.c_str(), static_cast<int>(id_width), i.id.c_str(),
                  control.c_str(), state.c_str());
    }
  }
  std::printf("status: %d fresh, %d stale, %d never recorded\n", rep->fresh, rep->stale, rep->unrecorded);
  return rep->stale + rep->unrecorded > 0 ? 1 : 0;
}

void register_status(CLI::App& app) {
  auto a = std::make_shared<StatusArgs>();
  CLI::App* cmd =
      add_command(app, "status",
                  "Each item's latest verdict and control, and whether it is stale (its item text, "
                  "falsifier binary, model or profile changed since)",
                  [a] { return run_status(*a); });
  cmd->add_option("paths", a->paths, "Contract files or directories (default: <repo>/contracts)");
  cmd->add_option("--evidence-dir", a->evidence_dir, "Evidence directory (default: <repo>/evidence)");
  cmd->add_option("--build-dir", a->build_dir, "Build directory (default: the one this popper was built in)");
  cmd->add_option("--model-cache", a->model_cache, "Synthetic model cache (default: as popper run)");
  cmd->add_option("--profile", a->profile, "Profile to compare with (default: each item's first)");
}

}  // namespace
POPPER_REGISTER_COMMAND(43, register_status);
}  // namespace popper::cli
