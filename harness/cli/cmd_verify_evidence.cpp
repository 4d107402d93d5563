// `popper verify-evidence`: every evidence file matches its MANIFEST digest and every file is listed.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/evidence/evidence.h"
#include "harness/run/targets.h"

namespace popper::cli {
namespace {

int run_verify(const std::string& dir_arg) {
  std::string dir =
      dir_arg.empty() ? (std::filesystem::path(harness::find_repo_root(".")) / "evidence").string() : dir_arg;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    std::fprintf(stderr, "popper verify-evidence: %s: no such directory\n", dir.c_str());
    return 2;
  }
  harness::VerifyReport rep = harness::verify_evidence(dir);
  for (const auto& p : rep.problems) std::fprintf(stderr, "%s\n", p.c_str());
  if (rep.problems.empty()) {
    std::printf("%s: %d evidence file%s verified against MANIFEST\n", dir.c_str(), rep.files_checked,
                rep.files_checked == 1 ? "" : "s");
    return 0;
  }
  std::printf("%s: %zu problem%s in %d file%s checked\n", dir.c_str(), rep.problems.size(),
              rep.problems.size() == 1 ? "" : "s", rep.files_checked, rep.files_checked == 1 ? "" : "s");
  return 1;
}

void register_verify_evidence(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd =
      add_command(app, "verify-evidence", "Check evidence files against evidence/MANIFEST digests",
                  [dir] { return run_verify(*dir); });
  cmd->add_option("--evidence-dir", *dir, "Evidence directory (default: <repo>/evidence)");
}

}  // namespace
POPPER_REGISTER_COMMAND(43, register_verify_evidence);
}  // namespace popper::cli
