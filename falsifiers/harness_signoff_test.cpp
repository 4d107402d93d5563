// Falsifiers for `popper signoff` / `popper verify-signoff`: a bundle verifies; one flipped byte
// in any of its files, or another key, fails verification naming the file; a dirty tree, a
// falsified item, tampered evidence or evidence of another commit refuses the sign-off.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/atomic_file.h"
#include "falsifiers/harness_repo_fixture.h"
#include "harness/signoff/crypto.h"
#include "harness/signoff/signoff.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using testing::Cmd;
using testing::TempRepo;

const char* kContract = R"(metadata:
  version: 1.0.0
  created: 2026-01-01
  updated: 2026-01-01
name: release-demo-v1
version: 1.0.0
description: sign-off fixture
falsification:
  - id: FALSIFY-RELEASE_DEMO_V1_001
    description: passes
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
  - id: FALSIFY-RELEASE_DEMO_V1_002
    description: a figure that holds its threshold
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.ReportsMetric", env: {FIXTURE_SAMPLES: "9,10,11,10,9.5,10.5,10"}, thresholds: [{metric: tokens_per_second, op: ">=", value: 5}]}
  - id: FALSIFY-RELEASE_DEMO_V1_003
    description: pending work never blocks a sign-off
    blocked_on: a later issue
    falsifier: {kind: gtest, target: not_written_yet_test, filter: "*"}
status_history:
  - version: 1.0.0
    date: 2026-01-01
    summary: seed
)";

TEST(Dsse, PreAuthenticationEncodingMatchesTheSpecExample) {
  // github.com/secure-systems-lab/dsse protocol.md, "Test vectors".
  EXPECT_EQ(dsse_pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(Dsse, Base64RoundTripsAndRejectsNonCanonicalText) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                       std::string("\0\xff\x10", 3)}) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");  // RFC 4648 section 10
  EXPECT_FALSE(base64_decode("Zm9vYmF").ok());
  EXPECT_FALSE(base64_decode("Zm9v!mFy").ok());
}

TEST(Ed25519, SignaturesVerifyOnlyWithTheSignersKeyAndTheSignedBytes) {
  auto a = generate_ed25519(), b = generate_ed25519();
  ASSERT_TRUE(a.ok() && b.ok());
  auto sig = ed25519_sign(a->private_pem, "a", "message");
  ASSERT_TRUE(sig.ok()) << sig.message();
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(ed25519_verify(a->public_pem, "a", "message", *sig).value());
  EXPECT_FALSE(ed25519_verify(b->public_pem, "b", "message", *sig).value());
  EXPECT_FALSE(ed25519_verify(a->public_pem, "a", "messagE", *sig).value());
  auto not_a_key =
      ed25519_sign("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k.pem", "m");
  ASSERT_FALSE(not_a_key.ok());
  EXPECT_NE(not_a_key.message().find("k.pem"), std::string::npos);
}

class Signoff : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_.init({{"release-demo-v1", kContract}});
    auto a = generate_ed25519(), b = generate_ed25519();
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(write_file_atomic(repo_.outside("key.pem"), a->private_pem).ok());
    ASSERT_TRUE(write_file_atomic(repo_.outside("key.pub.pem"), a->public_pem).ok());
    ASSERT_TRUE(write_file_atomic(repo_.outside("other.pub.pem"), b->public_pem).ok());
  }
  Cmd run() { return repo_.popper({"run", testing::build_flag()}); }
  Cmd signoff(const std::string& bundle) {
    return repo_.popper({"signoff", "--release", "r1", "--key", repo_.outside("key.pem"), "-o", bundle});
  }
  Cmd verify(const std::string& bundle, const std::string& pub) {
    std::vector<std::string> args{"verify-signoff", bundle};
    if (!pub.empty()) args.insert(args.end(), {"--pubkey", pub});
    return repo_.popper(args);
  }
  TempRepo repo_;
};

TEST_F(Signoff, ABundleVerifiesAndAnyFlippedByteOrOtherKeyFailsNamingTheFile) {
  RecordProperty("falsification_id", "signoff: bundle verifies; one flipped byte or another key fails");
  ASSERT_EQ(run().code, 0);
  const std::string bundle = repo_.outside("bundle");
  Cmd s = signoff(bundle);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out, bundle + "\n");
  Cmd ok = verify(bundle, repo_.outside("key.pub.pem"));
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("Ed25519 signature verified"), std::string::npos) << ok.out;

  auto statement = nlohmann::json::parse(read_file(bundle + "/statement.json").value());
  EXPECT_EQ(statement["_type"], kInTotoStatementType);
  EXPECT_EQ(statement["predicateType"], kSignoffPredicateType);
  EXPECT_EQ(statement["subject"][0]["name"], "popper");
  EXPECT_EQ(statement["subject"][0]["digest"]["sha256"].get<std::string>().size(), 64u);
  bool contract_subject = false;
  for (const auto& sj : statement["subject"])
    contract_subject |= sj["name"] == "contracts/release-demo-v1.yaml";
  EXPECT_TRUE(contract_subject);
  const auto& items = statement["predicate"]["contracts"][0]["items"];
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]["verdict"], "survived");
  EXPECT_EQ(items[2]["required"], false);

  Cmd other = verify(bundle, repo_.outside("other.pub.pem"));
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("statement.dsse.json: no signature verifies"), std::string::npos) << other.err;

  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(bundle))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), bundle).string());
  ASSERT_GE(files.size(), 6u);  // MANIFEST, statement, envelope, key, contract, evidence
  for (const auto& rel : files) {
    const std::string copy = repo_.outside("flip");
    fs::remove_all(copy);
    fs::copy(bundle, copy, fs::copy_options::recursive);
    std::string text = read_file(copy + "/" + rel).value();
    text[text.size() / 2] ^= 0x01;
    ASSERT_TRUE(write_file_atomic(copy + "/" + rel, text).ok());
    for (const std::string& pub : {repo_.outside("key.pub.pem"), std::string()}) {
      Cmd v = verify(copy, pub);
      EXPECT_EQ(v.code, 1) << rel << " flipped, pubkey '" << pub << "'\n" << v.out;
      EXPECT_NE(v.err.find(copy + "/" + rel + ":"), std::string::npos) << rel << " flipped:\n" << v.err;
    }
  }
}

TEST_F(Signoff, ADirtyTreeRefusesSignoff) {
  RecordProperty("falsification_id", "signoff: a dirty tree refuses sign-off");
  ASSERT_EQ(run().code, 0);
  ASSERT_TRUE(write_file_atomic(repo_ / "scratch.cpp", "int x;\n").ok());
  Cmd s = signoff(repo_.outside("bundle"));
  EXPECT_EQ(s.code, 1);
  EXPECT_NE(s.err.find("uncommitted changes"), std::string::npos) << s.err;
  EXPECT_NE(s.err.find("scratch.cpp"), std::string::npos) << s.err;
  EXPECT_FALSE(fs::exists(repo_.outside("bundle")));
}

TEST_F(Signoff, AFalsifiedItemRefusesSignoff) {
  RecordProperty("falsification_id", "signoff: a falsified item refuses sign-off");
  std::string bad = kContract;
  bad.replace(bad.find("Fixture.Passes"), 14, "Fixture.FailsWithMessage");
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/release-demo-v1.yaml", bad).ok());
  repo_.commit_all("falsify");
  ASSERT_EQ(run().code, 1);
  Cmd s = signoff(repo_.outside("bundle"));
  EXPECT_EQ(s.code, 1);
  EXPECT_NE(s.err.find("FALSIFY-RELEASE_DEMO_V1_001 is falsified"), std::string::npos) << s.err;
  EXPECT_FALSE(fs::exists(repo_.outside("bundle")));
}

TEST_F(Signoff, EvidenceOfAnotherCommitOrEditedEvidenceRefusesSignoff) {
  ASSERT_EQ(run().code, 0);
  ASSERT_TRUE(write_file_atomic(repo_ / "NOTES.md", "later\n").ok());
  repo_.git({"add", "NOTES.md"});
  repo_.git({"commit", "-q", "-m", "later"});
  Cmd stale = signoff(repo_.outside("bundle"));
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.err.find("no evidence from commit"), std::string::npos) << stale.err;

  ASSERT_EQ(run().code, 0);
  std::string evidence;
  for (const auto& e : fs::recursive_directory_iterator(repo_ / "evidence"))
    if (e.path().extension() == ".json") evidence = e.path().string();
  std::string text = read_file(evidence).value();
  text[text.find("survived")] = 'S';
  ASSERT_TRUE(write_file_atomic(evidence, text).ok());
  Cmd edited = signoff(repo_.outside("bundle"));
  EXPECT_EQ(edited.code, 1);
  EXPECT_NE(edited.err.find("verify-evidence: "), std::string::npos) << edited.err;
  EXPECT_FALSE(fs::exists(repo_.outside("bundle")));
}

const char* kWaivable = R"(metadata: {version: 1.0.0, created: 2026-01-01, updated: 2026-01-01}
name: waiver-demo-v1
version: 1.0.0
description: waiver fixture
falsification:
  - id: FALSIFY-WAIVER_DEMO_V1_001
    description: passes
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
  - id: FALSIFY-WAIVER_DEMO_V1_002
    description: needs a GPU this machine lacks
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.SkipsWithReason"}
status_history:
  - {version: 1.0.0, date: 2026-01-01, summary: seed}
)";

class Waivers : public ::testing::Test {
 protected:
  void SetUp() override { repo_.init({{"waiver-demo-v1", kWaivable}}); }
  Cmd signoff(const std::string& bundle, const std::vector<std::string>& extra) {
    std::vector<std::string> args{"signoff", "--release", "r1", "-o", bundle};
    args.insert(args.end(), extra.begin(), extra.end());
    return repo_.popper(args);
  }
  TempRepo repo_;
};

TEST_F(Waivers, AnInconclusiveItemIsSignedWaivedAndTheWaiverIsInTheStatementAndVerified) {
  RecordProperty("falsification_id",
                 "signoff: a waiver signs an inconclusive item and shows in verify-signoff");
  ASSERT_EQ(repo_.popper({"run", testing::build_flag()}).code, 0);
  Cmd refused = signoff(repo_.outside("b0"), {});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("FALSIFY-WAIVER_DEMO_V1_002 is inconclusive"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--waive FALSIFY-WAIVER_DEMO_V1_002 --reason TEXT"), std::string::npos)
      << refused.err;

  const std::string bundle = repo_.outside("bundle");
  Cmd s =
      signoff(bundle, {"--waive", "FALSIFY-WAIVER_DEMO_V1_002", "--reason", "no GPU on the release machine"});
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.err.find("1 waived item(s) in the statement"), std::string::npos) << s.err;
  auto statement = nlohmann::json::parse(read_file(bundle + "/statement.json").value());
  const auto& w = statement["predicate"]["waivers"];
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0]["id"], "FALSIFY-WAIVER_DEMO_V1_002");
  EXPECT_EQ(w[0]["reason"], "no GPU on the release machine");
  EXPECT_EQ(w[0]["replaces"]["verdict"], "inconclusive");
  EXPECT_EQ(w[0]["replaces"]["reason"], "skipped: fixture needs a GPU");
  EXPECT_EQ(statement["predicate"]["contracts"][0]["items"][1]["waived"]["reason"],
            "no GPU on the release machine");
  Cmd v = repo_.popper({"verify-signoff", bundle});
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.out.find("waiver: FALSIFY-WAIVER_DEMO_V1_002 (waiver-demo-v1) waived, replacing inconclusive: "
                       "skipped: fixture needs a GPU — reason: no GPU on the release machine"),
            std::string::npos)
      << v.out;
}

TEST_F(Waivers, ASurvivedItemNeedsNoWaiverAndAFalsifiedOneCanNeverBeWaived) {
  ASSERT_EQ(repo_.popper({"run", testing::build_flag()}).code, 0);
  Cmd nothing = signoff(repo_.outside("b1"), {"--waive", "FALSIFY-WAIVER_DEMO_V1_001", "--reason", "x"});
  EXPECT_EQ(nothing.code, 2);
  EXPECT_NE(nothing.err.find("there is nothing to waive"), std::string::npos) << nothing.err;
  Cmd unpaired = signoff(repo_.outside("b2"), {"--waive", "FALSIFY-WAIVER_DEMO_V1_002"});
  EXPECT_EQ(unpaired.code, 2);
  EXPECT_NE(unpaired.err.find("come in pairs"), std::string::npos) << unpaired.err;
  Cmd unknown = signoff(repo_.outside("b3"), {"--waive", "FALSIFY-WAIVER_DEMO_V1_009", "--reason", "x"});
  EXPECT_EQ(unknown.code, 2);

  std::string bad = kWaivable;
  bad.replace(bad.find("Fixture.Passes"), 14, "Fixture.FailsWithMessage");
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/waiver-demo-v1.yaml", bad).ok());
  repo_.commit_all("falsify");
  ASSERT_EQ(repo_.popper({"run", testing::build_flag()}).code, 1);
  Cmd falsified =
      signoff(repo_.outside("b4"), {"--waive", "FALSIFY-WAIVER_DEMO_V1_001", "--reason", "ship it", "--waive",
                                    "FALSIFY-WAIVER_DEMO_V1_002", "--reason", "no GPU"});
  EXPECT_EQ(falsified.code, 1);
  EXPECT_NE(falsified.err.find("FALSIFY-WAIVER_DEMO_V1_001 is falsified"), std::string::npos)
      << falsified.err;
  EXPECT_NE(falsified.err.find("a falsified item can never be waived"), std::string::npos) << falsified.err;
  EXPECT_FALSE(fs::exists(repo_.outside("b4")));
}

}  // namespace
}  // namespace popper::harness
