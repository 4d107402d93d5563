// End-to-end falsifiers for the harness commands: `popper validate | run | gate |
// verify-evidence` in a throwaway git repository whose contract binds the fixture falsifiers,
// including a synthetic model built on demand and `--record` on a clean and a dirty tree.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
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
  // Bound items without a control (the blocked one too): warned about, not refused.
  EXPECT_NE(v.out.find("1 contract, 3 items: 0 errors, 3 warnings, 1 pending"), std::string::npos) << v.out;
  EXPECT_NE(v.err.find("falsification[0].control: no control"), std::string::npos) << v.err;

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

// The line of `out` that names `id` ("" when none).
std::string line_of(const std::string& out, const std::string& id) {
  size_t at = out.find(id);
  if (at == std::string::npos) return "";
  size_t start = out.rfind('\n', at), end = out.find('\n', at);
  start = start == std::string::npos ? 0 : start + 1;
  return out.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// A contract whose first check notices its control's fault and whose second ignores it.
const char* kControlled = R"(metadata: {version: 1.0.0, created: 2026-01-01, updated: 2026-01-01}
name: cli-controls-v1
version: 1.0.0
description: controls fixture
falsification:
  - id: FALSIFY-CLI_CONTROLS_V1_001
    description: a check that notices the fault
    control: kv_stale_position
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.NoticesTheStaleKvFault"}
  - id: FALSIFY-CLI_CONTROLS_V1_002
    description: a check that asserts nothing about the engine
    control: kv_stale_position
    falsifier: {kind: gtest, target: harness_fixture_gtest, filter: "Fixture.Passes"}
status_history:
  - {version: 1.0.0, date: 2026-01-01, summary: seed}
)";

TEST_F(Cli, ControlsAreRunRecordedAndAnUnfalsifiableItemTurnsTheGateRed) {
  RecordProperty("falsification_id", "harness: an unfalsifiable item turns the gate red");
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/cli-controls-v1.yaml", kControlled).ok());
  const std::string build = "--build-dir=" + testing::build_dir();
  Cmd r = popper({"run", build, "contracts/cli-controls-v1.yaml", "--controls", "--json"});
  EXPECT_EQ(r.code, 1) << "an unfalsifiable item fails the run\n" << r.err;
  EXPECT_NE(r.err.find("└ control (kv_stale_position)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("UNFALSIFIABLE"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("controls: 1 of 2 falsified, 1 UNFALSIFIABLE"), std::string::npos) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  const auto& items = summary["contracts"][0]["items"];
  EXPECT_EQ(items[0]["control"]["verdict"], "falsified");
  EXPECT_EQ(items[1]["control"]["unfalsifiable"], true);
  auto doc = read_evidence(repo_ / summary["contracts"][0]["evidence"].get<std::string>());
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ((*doc)["run"]["controls"], true);
  EXPECT_EQ((*doc)["items"][0]["control"]["verdict"], "falsified");
  EXPECT_EQ((*doc)["items"][0]["control"]["faults"][0], "kv_stale_position");
  EXPECT_GT((*doc)["items"][0]["control"]["duration_s"].get<double>(), 0);

  Cmd g = popper({"gate", "contracts/cli-controls-v1.yaml", "--allow-inconclusive", "--junit",
                  logs_ / "g.xml", "--markdown", logs_ / "g.md"});
  EXPECT_EQ(g.code, 1) << g.out;
  EXPECT_NE(g.out.find("unfalsifiable: its check survived the control (kv_stale_position)"),
            std::string::npos)
      << g.out;
  EXPECT_NE(g.out.find("sensitivity: 1/2 controls falsified"), std::string::npos) << g.out;
  std::string junit = read_file(logs_ / "g.xml").value(), md = read_file(logs_ / "g.md").value();
  EXPECT_NE(junit.find("<failure message=\"unfalsifiable:"), std::string::npos) << junit;
  EXPECT_NE(junit.find("name=\"sensitivity\" value=\"1/2 controls falsified\""), std::string::npos) << junit;
  EXPECT_NE(md.find("| Item | Verdict | Control | Required | Reason |"), std::string::npos) << md;
  EXPECT_NE(md.find("✅ falsified (kv_stale_position)"), std::string::npos) << md;
  EXPECT_NE(md.find("❌ survived: unfalsifiable (kv_stale_position)"), std::string::npos) << md;

  // The healthy item alone passes, and --require-controls wants the control in the evidence.
  Cmd one = popper({"gate", "contracts/cli-controls-v1.yaml", "--any-commit"});
  EXPECT_EQ(one.code, 1);
  Cmd only_good =
      popper({"run", build, "contracts/cli-controls-v1.yaml", "--id", "FALSIFY-CLI_CONTROLS_V1_001"});
  EXPECT_EQ(only_good.code, 0) << only_good.err;
  Cmd no_control =
      popper({"gate", "contracts/cli-controls-v1.yaml", "--require-controls", "--allow-inconclusive"});
  EXPECT_EQ(no_control.code, 1);
  EXPECT_NE(no_control.out.find("no control run in the evidence (run with --controls)"), std::string::npos)
      << no_control.out;
}

TEST_F(Cli, PopperFaultsInTheEnvironmentIsRefusedAndListFaultsNamesThem) {
  Cmd list = popper({"--list-faults"});
  EXPECT_EQ(list.code, 0);
  EXPECT_NE(list.out.find("kv_stale_position"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("engine/model/model.cpp Session::issue_layers"), std::string::npos) << list.out;
  SpawnOptions o;
  o.argv = {testing::build_dir() + "/harness/popper", "run", "--no-evidence"};
  o.cwd = repo_.path();
  o.stderr_path = logs_ / "faulted.err";
  o.env_extra = {{"POPPER_FAULTS", "kv_stale_position"}};
  ProcessResult pr = run_process(o);
  EXPECT_EQ(pr.exit_code, 2);
  std::string err = read_file(logs_ / "faulted.err").value();
  EXPECT_NE(err.find("POPPER_FAULTS=kv_stale_position is set"), std::string::npos) << err;
  o.env_extra = {{"POPPER_FAULTS", "kv_stale_positoin"}};
  pr = run_process(o);
  EXPECT_EQ(pr.exit_code, 2);
  err = read_file(logs_ / "faulted.err").value();
  EXPECT_NE(err.find("unknown fault 'kv_stale_positoin'"), std::string::npos) << err;
}

TEST_F(Cli, ARebuiltFalsifierMakesStatusMarkItsItemsStaleAndFreshGateFail) {
  RecordProperty("falsification_id", "harness: a rebuilt falsifier makes popper status mark its items stale");
  // A build directory of our own, so that "rebuilding" the falsifier touches nothing shared.
  const std::string build = logs_ / "build";
  fs::create_directories(build + "/falsifiers");
  fs::copy_file(testing::build_dir() + "/falsifiers/harness_fixture_gtest",
                build + "/falsifiers/harness_fixture_gtest");
  Cmd r = popper({"run", "--build-dir=" + build, "--id", "FALSIFY-CLI_DEMO_V1_001"});
  ASSERT_EQ(r.code, 0) << r.err;
  Cmd fresh = popper({"status", "--build-dir=" + build});
  EXPECT_TRUE(line_of(fresh.out, "FALSIFY-CLI_DEMO_V1_001").ends_with(" fresh")) << fresh.out;
  EXPECT_TRUE(line_of(fresh.out, "FALSIFY-CLI_DEMO_V1_002").ends_with(" never recorded")) << fresh.out;
  EXPECT_EQ(fresh.code, 1) << "two items were never recorded";
  // "Rebuild": the same program with other bytes (a trailing byte changes no behaviour).
  std::string bin = read_file(build + "/falsifiers/harness_fixture_gtest").value() + std::string(1, '\0');
  ASSERT_TRUE(write_file_atomic(build + "/falsifiers/harness_fixture_gtest", bin).ok());
  fs::permissions(build + "/falsifiers/harness_fixture_gtest", fs::perms::owner_all);
  Cmd stale = popper({"status", "--build-dir=" + build});
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.out.find("stale: falsifier rebuilt since"), std::string::npos) << stale.out;
  Cmd gate = popper({"gate", "--fresh", "--build-dir=" + build, "--allow-inconclusive", "--any-commit"});
  EXPECT_EQ(gate.code, 1);
  EXPECT_NE(gate.out.find("stale: falsifier rebuilt since"), std::string::npos) << gate.out;
  // Editing the item's text makes it stale too.
  std::string text = kContract;
  text.replace(text.find("the passing fixture passes"), 26, "the passing fixture still passes");
  ASSERT_TRUE(write_file_atomic(repo_ / "contracts/cli-demo-v1.yaml", text).ok());
  Cmd edited = popper({"status", "--build-dir=" + build});
  EXPECT_NE(edited.out.find("stale: item text changed; falsifier rebuilt since"), std::string::npos)
      << edited.out;
}

TEST_F(Cli, ModelFlagSubstitutesAFittingFileAndRefusesOneThatDoesNotFit) {
  const std::string build = "--build-dir=" + testing::build_dir();
  // The tiny qwen3moe F32 file the demo item names, built under another name, stands in for it.
  Cmd synth = popper({"synth", "--arch", "qwen3moe", "--preset", "tiny", "--quant", "f32", "--seed", "3",
                      "-o", logs_ / "mine.gguf"});
  ASSERT_EQ(synth.code, 0) << synth.err;
  Cmd r = popper({"run", build, "--id", "FALSIFY-CLI_DEMO_V1_002", "--model",
                  "tiny-qwen3moe-f32=" + logs_ / "mine.gguf", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  auto doc = read_evidence(repo_ / summary["contracts"][0]["evidence"].get<std::string>());
  ASSERT_TRUE(doc.ok());
  const auto& model = (*doc)["items"][0]["model"];
  EXPECT_EQ(model["name"], "tiny-qwen3moe-f32");
  EXPECT_EQ(model["path"], logs_ / "mine.gguf");
  EXPECT_EQ(model["substituted"], true);
  EXPECT_EQ(model["arch"], "qwen3moe");
  EXPECT_EQ(model["sha256"], sha256_file(logs_ / "mine.gguf").value());
  // A dense qwen3 file does not fit a qwen3moe name; nothing runs.
  Cmd dense =
      popper({"synth", "--arch", "qwen3", "--preset", "tiny", "--quant", "f32", "-o", logs_ / "dense.gguf"});
  ASSERT_EQ(dense.code, 0) << dense.err;
  Cmd misfit = popper({"run", build, "--model", "tiny-qwen3moe-f32=" + logs_ / "dense.gguf"});
  EXPECT_EQ(misfit.code, 2);
  EXPECT_NE(misfit.err.find("the file's arch is qwen3, but tiny-qwen3moe-f32 is qwen3moe"), std::string::npos)
      << misfit.err;
  EXPECT_EQ(misfit.err.find("[1/"), std::string::npos) << "refused before anything ran";
  Cmd unnamed = popper({"run", build, "--model", "30b-a3b-q4_k_m=" + logs_ / "mine.gguf"});
  EXPECT_EQ(unnamed.code, 2);
  EXPECT_NE(unnamed.err.find("no item of this run names model 30b-a3b-q4_k_m (they name: tiny-qwen3moe-f32)"),
            std::string::npos)
      << unnamed.err;
}

}  // namespace
}  // namespace popper::harness
