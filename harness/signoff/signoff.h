// `popper signoff --release NAME` and `popper verify-signoff BUNDLE`.
//
// Sign-off is refused unless the working tree is clean, `verify-evidence` passes, and every
// required item of every contract survived in evidence produced from the current commit (clean
// tree, the contract's current claims) on each required profile, with its control (when one ran)
// falsified, or is waived (Waiver below). The bundle then holds:
//
//   contracts/<file>.yaml        the contracts as signed off (byte for byte)
//   evidence/<contract>/<file>   the evidence files that decided each item
//   statement.json               an in-toto Statement v1: subjects are the popper binary, the
//                                models the items used and the contracts; predicateType
//                                kSignoffPredicateType; predicate: release, commit, profiles,
//                                verdicts per item, the evidence files and their digests
//   statement.dsse.json          with --key: a DSSE envelope with an Ed25519 signature of it
//   signer.pub.pem               with --key: the signer's public key (for reference only)
//   MANIFEST                     "<sha256>  <path>" for every other file (sha256sum -c format)
//
// The bundle is built in a temporary directory beside the target and renamed into place, so it
// exists whole or not at all. Format described in docs/signoff.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/contract/contract.h"

namespace popper::harness {

inline constexpr const char* kInTotoStatementType = "https://in-toto.io/Statement/v1";
inline constexpr const char* kSignoffPredicateType = "https://popper.dev/attestation/signoff/v1";

// `--waive ID --reason TEXT`: sign with an item that did not survive, saying why (a release on a
// machine without a GPU, whose CUDA items are inconclusive). The waiver, its reason and the
// verdict it replaces go into the signed statement (predicate.waivers); a falsified item can
// never be waived, a survived one needs no waiver (an error: nothing to waive).
struct Waiver {
  std::string id;
  std::string reason;
};

struct SignoffOptions {
  std::string release;
  std::string repo_root;
  std::string evidence_dir;
  std::string out_dir;                // the bundle directory; must not exist yet
  std::string popper_exe;             // hashed as a subject
  std::string key_path;               // Ed25519 private key (PEM); empty: unsigned
  std::vector<std::string> profiles;  // required run profiles; empty: each item's default
  std::vector<const Contract*> contracts;
  std::vector<Waiver> waivers;
};

struct SignoffOutcome {
  int exit_code = 0;                  // 0 written, 1 refused, 2 bad input (key, paths)
  std::vector<std::string> problems;  // why it was refused, one per line
  std::vector<std::string> files;     // bundle files written (relative)
  std::string keyid;                  // when signed
};

SignoffOutcome create_signoff(const SignoffOptions& opts);

struct VerifySignoffOutcome {
  std::vector<std::string> problems;  // each names the file
  std::vector<std::string> notes;     // e.g. "signature checked against the bundle's own key"
  int files_checked = 0;
  bool signature_verified = false;
  // The statement's waivers, one line each: "FALSIFY-..._001 (cuda-backend-parity-v1): replaces
  // inconclusive (needs a CUDA GPU ...): <reason>".
  std::vector<std::string> waivers;
};

// Every MANIFEST digest, every file listed, the statement against the MANIFEST and the bundled
// contracts, the DSSE payload against the statement and its signature against `pubkey_path` (or
// the bundle's signer.pub.pem when none is given, which proves integrity, not who signed).
VerifySignoffOutcome verify_signoff(const std::string& bundle_dir, const std::string& pubkey_path);

}  // namespace popper::harness
