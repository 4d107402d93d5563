// `popper signoff --release NAME [--key KEY.pem] [-o DIR] [--profile P]... [CONTRACTS]`: a
// sign-off bundle (harness/signoff/signoff.h) when the tree is clean, the evidence verifies and every
// required item survived at this commit; otherwise exit 1 with every reason.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli/harness_cli.h"
#include "harness/contract/contract_set.h"
#include "harness/run/targets.h"
#include "harness/signoff/signoff.h"

namespace popper::cli {
namespace {
namespace fs = std::filesystem;
using namespace harness;

struct SignoffArgs {
  std::string release;
  std::vector<std::string> paths;
  std::string key;
  std::string out_dir;
  std::string evidence_dir;
  std::vector<std::string> profiles;
  std::vector<std::string> waive, reasons;
};

int run_signoff(const SignoffArgs& a) {
  const std::string root = find_repo_root(".");
  if (a.release.empty() || a.release.find('/') != std::string::npos || a.release[0] == '.') {
    std::fprintf(stderr,
                 "popper signoff: --release '%s': want a name without '/' that does not start with '.'\n",
                 a.release.c_str());
    return 2;
  }
  auto loaded = cli::load_checked_contracts(a.paths, root, "signoff", "; nothing to sign off");
  if (!loaded) return 2;
  const ContractSet& set = *loaded;
  SignoffOptions o;
  o.release = a.release;
  o.repo_root = root;
  o.evidence_dir = a.evidence_dir.empty() ? (fs::path(root) / "evidence").string() : a.evidence_dir;
  o.out_dir = a.out_dir.empty() ? (fs::path(root) / "signoff" / a.release).string() : a.out_dir;
  o.popper_exe = self_exe_path();
  o.key_path = a.key;
  o.profiles = a.profiles;
  o.contracts = set.contracts();
  if (a.waive.size() != a.reasons.size()) {
    std::fprintf(stderr,
                 "popper signoff: --waive ID and --reason TEXT come in pairs (%zu --waive, %zu --reason)\n",
                 a.waive.size(), a.reasons.size());
    return 2;
  }
  for (size_t i = 0; i < a.waive.size(); ++i) o.waivers.push_back({a.waive[i], a.reasons[i]});
  SignoffOutcome out = create_signoff(o);
  if (out.exit_code != 0) {
    for (const auto& p : out.problems) std::fprintf(stderr, "popper signoff: %s\n", p.c_str());
    if (out.exit_code == 1)
      std::fprintf(stderr, "popper signoff: refused (%zu reason%s); no bundle written\n", out.problems.size(),
                   out.problems.size() == 1 ? "" : "s");
    return out.exit_code;
  }
  std::fprintf(stderr, "popper signoff: %s: %zu files, %s%s\n", a.release.c_str(), out.files.size(),
               out.keyid.empty() ? "unsigned (pass --key to sign)"
                                 : ("signed, keyid " + out.keyid.substr(0, 16)).c_str(),
               o.waivers.empty()
                   ? ""
                   : (", " + std::to_string(o.waivers.size()) + " waived item(s) in the statement").c_str());
  std::printf("%s\n", o.out_dir.c_str());
  return 0;
}

void register_signoff(CLI::App& app) {
  auto a = std::make_shared<SignoffArgs>();
  CLI::App* cmd =
      add_command(app, "signoff", "Write a release sign-off bundle (in-toto Statement, optional Ed25519)",
                  [a] { return run_signoff(*a); });
  cmd->add_option("--release", a->release, "Release name (the bundle goes to <repo>/signoff/<NAME>)")
      ->required();
  cmd->add_option("paths", a->paths, "Contract files or directories (default: <repo>/contracts)");
  cmd->add_option("--key", a->key, "Ed25519 private key (PEM) to sign the statement with");
  cmd->add_option("-o,--out", a->out_dir, "Bundle directory (must not exist)");
  cmd->add_option("--evidence-dir", a->evidence_dir, "Evidence directory (default: <repo>/evidence)");
  cmd->add_option("--profile", a->profiles,
                  "Required profile (repeatable); default: each item's default profile");
  cmd->add_option("--waive", a->waive,
                  "Sign with this item waived (repeatable, each with its --reason): inconclusive, errored or "
                  "unfalsifiable items only, never a falsified one");
  cmd->add_option("--reason", a->reasons,
                  "Why the matching --waive item may ship (goes into the signed statement)");
}

}  // namespace
POPPER_REGISTER_COMMAND(48, register_signoff);
}  // namespace popper::cli
