// `popper verify-signoff BUNDLE [--pubkey KEY.pub.pem]`: re-checks every digest of a sign-off
// bundle and its signature; exit 0 intact, 1 any mismatch (each problem names the file), 2 usage.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/signoff/signoff.h"

namespace popper::cli {
namespace {

int run_verify_signoff(const std::string& bundle, const std::string& pubkey) {
  std::error_code ec;
  if (!std::filesystem::is_directory(bundle, ec)) {
    std::fprintf(stderr, "popper verify-signoff: %s: no such bundle directory\n", bundle.c_str());
    return 2;
  }
  harness::VerifySignoffOutcome out = harness::verify_signoff(bundle, pubkey);
  for (const auto& p : out.problems) std::fprintf(stderr, "%s/%s\n", bundle.c_str(), p.c_str());
  for (const auto& n : out.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  for (const auto& w : out.waivers) std::printf("waiver: %s\n", w.c_str());
  if (!out.problems.empty()) {
    std::printf("%s: FAILED, %zu problem%s in %d file%s checked\n", bundle.c_str(), out.problems.size(),
                out.problems.size() == 1 ? "" : "s", out.files_checked, out.files_checked == 1 ? "" : "s");
    return 1;
  }
  std::printf("%s: OK, %d files match MANIFEST and the statement%s\n", bundle.c_str(), out.files_checked,
              out.signature_verified ? "; Ed25519 signature verified" : "");
  return 0;
}

void register_verify_signoff(CLI::App& app) {
  auto bundle = std::make_shared<std::string>();
  auto pubkey = std::make_shared<std::string>();
  CLI::App* cmd = add_command(app, "verify-signoff", "Check a sign-off bundle's digests and signature",
                              [bundle, pubkey] { return run_verify_signoff(*bundle, *pubkey); });
  cmd->add_option("bundle", *bundle, "The bundle directory")->required();
  cmd->add_option("--pubkey", *pubkey, "The signer's Ed25519 public key (PEM)");
}

}  // namespace
POPPER_REGISTER_COMMAND(49, register_verify_signoff);
}  // namespace popper::cli
