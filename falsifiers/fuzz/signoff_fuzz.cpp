// Fuzz target: sign-off bundle verification (harness/signoff/signoff.h, verify_signoff: MANIFEST,
// the in-toto statement, the DSSE envelope and its Ed25519 signature).
//
// Input: a bundle directory as an archive (fuzz_archive.h), checked against its own
// signer.pub.pem.
// Properties: a verified signature implies an envelope in the bundle; a bundle that verifies
// clean stops verifying when any byte of any file in it changes, or when a file is added
// (tampering is what verification exists to catch).
#include <set>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "falsifiers/fuzz/fuzz_archive.h"
#include "harness/signoff/crypto.h"
#include "harness/signoff/signoff.h"

namespace popper::fuzz {
namespace {

using nlohmann::json;

void signoff_one_input(Bytes data) {
  MaterializedTree tree(
      "bundle", parse_archive(std::string_view(reinterpret_cast<const char*>(data.data()), data.size())));
  const FileTree& files = tree.files();
  const harness::VerifySignoffOutcome out = harness::verify_signoff(tree.path(), "");
  for (const auto& p : out.problems) fuzz_require(!p.empty(), "problems say something");
  if (out.signature_verified)
    fuzz_require(files.count("statement.dsse.json") == 1,
                 "a verified signature comes from the bundle's envelope");
  if (!out.problems.empty()) return;
  for (const auto& [rel, bytes] : files) {
    if (rel == "MANIFEST") continue;  // not listed in itself; its digests are what change
    std::string changed = bytes.empty() ? "x" : bytes;
    if (!bytes.empty()) changed[changed.size() / 2] ^= 0x01;
    tree.write(rel, changed);
    fuzz_require(!harness::verify_signoff(tree.path(), "").problems.empty(),
                 "a changed byte in " + rel + " is caught");
    tree.write(rel, bytes);
  }
  tree.write("added.txt", "not signed off\n");
  fuzz_require(!harness::verify_signoff(tree.path(), "").problems.empty(), "an added file is caught");
}

// Seeds: a small bundle in the layout create_signoff writes (signoff.h), unsigned and signed
// with a key made for the occasion (only its public half is in the bundle). The contract and
// evidence inside are the report fixtures'.
int signoff_seeds(const std::string& dir) {
  const std::string ev_rel = "demo-decode-v1/20261120T100000Z-77ca0ef0a490.json";
  auto ev = read_file(source_dir() + "/falsifiers/fixtures/report/evidence/" + ev_rel);
  auto contract = read_file(source_dir() + "/falsifiers/fixtures/harness/malformed/across/first-v1.yaml");
  if (!ev.ok() || !contract.ok()) return -1;
  FileTree bundle{{"contracts/first-v1.yaml", *contract}, {"evidence/" + ev_rel, *ev}};
  json files = json::array(), subjects = json::array();
  for (const auto& [path, text] : bundle) {
    files.push_back({{"path", path}, {"sha256", sha256_hex(text)}});
    if (path.rfind("contracts/", 0) == 0)
      subjects.push_back({{"name", path}, {"digest", {{"sha256", sha256_hex(text)}}}});
  }
  json statement = {
      {"_type", harness::kInTotoStatementType},
      {"subject", subjects},
      {"predicateType", harness::kSignoffPredicateType},
      {"predicate",
       {{"release", "fuzz-seed"},
        {"files", files},
        {"waivers", json::array({{{"id", "FALSIFY-FIRST_V1_001"},
                                  {"contract", "first-v1"},
                                  {"reason", "seed"},
                                  {"replaces", {{"verdict", "inconclusive"}, {"reason", "no GPU"}}}}})}}}};
  bundle["statement.json"] = statement.dump(2) + "\n";
  auto with_manifest = [](FileTree b) {
    std::string m;
    for (const auto& [path, text] : b) m += sha256_hex(text) + "  " + path + "\n";
    b["MANIFEST"] = m;
    return b;
  };
  if (!write_seed(dir, "unsigned", pack_archive(with_manifest(bundle)))) return -1;
  auto keys = harness::generate_ed25519();
  if (!keys.ok()) return -1;
  const std::string& st = bundle["statement.json"];
  auto sig = harness::ed25519_sign(keys->private_pem, "seed key",
                                   harness::dsse_pae(harness::kInTotoPayloadType, st));
  auto keyid = harness::ed25519_keyid_from_public_pem(keys->public_pem, "seed key");
  if (!sig.ok() || !keyid.ok()) return -1;
  json env = {{"payloadType", harness::kInTotoPayloadType},
              {"payload", harness::base64_encode(st)},
              {"signatures", json::array({{{"keyid", *keyid}, {"sig", harness::base64_encode(*sig)}}})}};
  bundle["statement.dsse.json"] = env.dump(2) + "\n";
  bundle["signer.pub.pem"] = keys->public_pem;
  return write_seed(dir, "signed", pack_archive(with_manifest(bundle))) ? 2 : -1;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(signoff, popper::fuzz::signoff_one_input, popper::fuzz::signoff_seeds);
