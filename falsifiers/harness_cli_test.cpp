// End-to-end falsifiers for the harness commands: `popper validate | run | gate |
// verify-evidence` in a throwaway git repository whose contract binds the fixture falsifiers,
// including a synthetic model built on demand and `--record` on a clean and a dirty tree.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/atomic_file.h"
#include "falsifiers/harness_test_util.h"
#include "harness/contract/contract.h"
#include "harness/evidence/evidence.h"
#include "harness/run/process.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;

const char* kContract = R"(# A demo contract over the fixture falsifiers.
metadata:
  version: 1.0.0
  created: 2026-01-01
  updated: 2026-01-01
name: cli-demo-v1
version: 1.0.0
description: end-to-end fixture
falsification:
  - id: FALSIFY-CLI_DEMO_V1_001
    description: the passing fixture passes
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
  - id: FALSIFY-CLI_DEMO_V1_002
    description: a falsifier gets the tiny model it names, built on demand
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.SeesModelEnvironment", model: tiny-qwen3moe-f32}
  - id: FALSIFY-CLI_DEMO_V1_003
    description: pending work
    blocked_on: a later issue
    falsifier: {kind: gtest, target: not_written_yet_test, filter: "*"}
status_history:
  - version: 1.0.0
    date: 2026-01-01
    summary: seed
)";

struct Cmd {
  int code = -1;
  std::string out, err;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(repo_ / "contracts");
    ASSERT_TRUE(write_file_atomic(repo_ / "contracts/cli-demo-v1.yaml", kContract).ok());
    for (auto args : {std::vector<std::string>{"init", "-q"},
                      {"add", "."},
                      {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed"}}) {
      std::vector<std::string> argv{"/usr/bin/env", "git"};
      argv.insert(argv.end(), args.begin(), args.end());
      ASSERT_TRUE(capture_output(argv, repo_.path()).ok());
    }
  }
  Cmd popper(std::vector<std::string> args) {
    SpawnOptions o;
    o.argv = {testing::build_dir() + "/harness/popper"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.cwd = repo_.path();
    o.stdout_path = logs_ / "out";
    o.stderr_path = logs_ / "err";
    o.timeout_s = 300;
    o.env_extra = {{"POPPER_MODEL_CACHE", logs_ / "models"}, {"NO_COLOR", "1"}};
    ProcessResult r = run_process(o);
    Cmd c;
    c.code = r.exited_ok() ? 0 : r.exit_code;
    c.out = read_file(logs_ / "out").value();
    c.err = read_file(logs_ / "err").value();
    return c;
  }
  testing::TempDir repo_, logs_;
};

TEST_F(Cli, RunGateVerifyAndRecordWorkTogether) {
  const std::string build = "--build-dir=" + testing::build_dir();
  Cmd v = popper({"validate", build});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.out.find("1 contract, 3 items: 0 errors, 0 warnings, 1 pending"), std::string::npos) << v.out;

  Cmd r = popper({"run", build, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("[1/3] FALSIFY-CLI_DEMO_V1_001  survived"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[2/3] FALSIFY-CLI_DEMO_V1_002  survived"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[3/3] FALSIFY-CLI_DEMO_V1_003  inconclusive"), std::string::npos) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["summary"]["survived"], 2);
  const std::string evidence = summary["contracts"][0]["evidence"];
  auto doc = read_evidence(repo_ / evidence);
  ASSERT_TRUE(doc.ok()) << doc.message();
  const auto& model = (*doc)["items"][1]["model"];
  EXPECT_EQ(model["arch"], "qwen3moe");
  EXPECT_EQ(model["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ((*doc)["provenance"]["git"]["dirty"], false) << "evidence/ does not make the tree dirty";

  Cmd g = popper({"gate", "--junit", logs_ / "gate.xml", "--markdown", logs_ / "gate.md"});
  EXPECT_EQ(g.code, 0) << g.out << g.err;
  EXPECT_TRUE(fs::exists(logs_ / "gate.xml"));
  Cmd ve = popper({"verify-evidence"});
  EXPECT_EQ(ve.code, 0) << ve.err;

  // --record: refused on a dirty tree, done on a clean one.
  ASSERT_TRUE(write_file_atomic(repo_ / "scratch.txt", "x").ok());
  Cmd dirty = popper({"run", build, "--record", "--id", "FALSIFY-CLI_DEMO_V1_001"});
  EXPECT_EQ(dirty.code, 2);
  EXPECT_NE(dirty.err.find("uncommitted changes"), std::string::npos) << dirty.err;
  fs::remove(repo_ / "scratch.txt");
  Cmd rec = popper({"run", build, "--record"});
  EXPECT_EQ(rec.code, 0) << rec.err;
  EXPECT_NE(rec.out.find("-> 1.1.0 (minor)"), std::string::npos) << rec.out;
  auto after = load_contract(repo_ / "contracts/cli-demo-v1.yaml");
  ASSERT_FALSE(after.has_errors());
  EXPECT_EQ(after.contract->version, "1.1.0");
  EXPECT_EQ(after.contract->text.substr(0, std::string(kContract).find("version: 1.0.0")),
            std::string(kContract).substr(0, std::string(kContract).find("version: 1.0.0")));

  // Tampering with evidence is caught; the gate refuses another commit's evidence.
  std::string text = read_file(repo_ / evidence).value();
  text[text.find("survived")] = 'X';
  ASSERT_TRUE(write_file_atomic(repo_ / evidence, text).ok());
  Cmd tampered = popper({"verify-evidence"});
  EXPECT_EQ(tampered.code, 1);
  EXPECT_NE(tampered.err.find("(file changed)"), std::string::npos) << tampered.err;
}

TEST_F(Cli, BadInputIsExitTwoAndFalsifiedIsExitOne) {
  Cmd missing = popper({"run", "contracts/nope.yaml"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("contracts/nope.yaml: no such file or directory"), std::string::npos)
      << missing.err;
  Cmd unknown_id = popper({"run", "--id", "FALSIFY-CLI_DEMO_V1_099"});
  EXPECT_EQ(unknown_id.code, 2);
  Cmd no_evidence = popper({"gate"});
  EXPECT_EQ(no_evidence.code, 1);
  EXPECT_NE(no_evidence.out.find("no evidence"), std::string::npos) << no_evidence.out;

  std::string bad = kContract;
  bad.replace(bad.find("Fixture.Passes"), 14, "Fixture.FailsWithMessage");
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/cli-demo-v1.yaml", bad).ok());
  Cmd r = popper({"run", "--build-dir=" + testing::build_dir(), "--id", "FALSIFY-CLI_DEMO_V1_001"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("falsified"), std::string::npos) << r.err;
  Cmd g = popper({"gate", "--any-commit"});
  EXPECT_EQ(g.code, 1);
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/cli-demo-v1.yaml", "name: [unclosed\n").ok());
  Cmd v = popper({"validate", "--no-bindings"});
  EXPECT_EQ(v.code, 1);
  EXPECT_NE(v.err.find("contracts/cli-demo-v1.yaml:2:1: error: invalid YAML"), std::string::npos) << v.err;
}

}  // namespace
}  // namespace popper::harness
