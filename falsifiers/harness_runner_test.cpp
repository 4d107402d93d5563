// Falsifiers for `popper run`'s verdicts: each fixture behaviour (pass, fail, skip, crash, hang,
// garbage, metrics, missing target / GPU / model) maps to the verdict the contract README
// promises, and a misbehaving child never takes the harness down.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "engine/gguf/gguf_reader.h"
#include "falsifiers/harness_test_util.h"
#include "harness/contract/contract.h"
#include "harness/run/controls.h"
#include "harness/run/fingerprint.h"
#include "harness/run/models.h"
#include "harness/run/process.h"
#include "harness/run/runner.h"

namespace popper::harness {
namespace {

// A one-item contract whose falsifier binding is `binding` (YAML, any style).
Contract contract_with(const std::string& binding, const std::string& item_extra = "") {
  std::string text =
      "metadata: {version: 1.0.0, created: 2026-01-01, updated: 2026-01-01}\n"
      "name: runner-fixture-v1\nversion: 1.0.0\ndescription: d\nfalsification:\n"
      "  - id: FALSIFY-RUNNER_FIXTURE_V1_001\n    description: d\n" +
      item_extra + "    falsifier: " + binding +
      "\nstatus_history:\n  - {version: 1.0.0, date: 2026-01-01, summary: s}\n";
  auto l = parse_contract("runner-fixture-v1.yaml", text);
  POPPER_CHECK(!l.has_errors(), "contract fixture: ", l.diagnostics.empty() ? "" : l.diagnostics[0].format());
  return *l.contract;
}

class Runner : public ::testing::Test {
 protected:
  RunOptions options(std::optional<std::string> profile = {},
                     const std::string& repo_root = POPPER_SOURCE_DIR) {
    RunOptions o;
    o.build_dir = testing::build_dir();
    o.repo_root = repo_root;
    o.model_cache = dir_ / "models";
    o.work_dir = dir_ / "work";
    o.popper_exe = testing::build_dir() + "/harness/popper";
    o.profile = profile;
    o.gpu.present = false;
    o.gpu.how = "test: no GPU";
    return o;
  }
  // The item's own run and then its control.
  std::pair<ItemResult, std::optional<ControlResult>> run_with_control(const std::string& binding,
                                                                       const std::string& item_extra) {
    Contract c = contract_with(binding, item_extra);
    RunOptions o = options();
    ItemResult own = run_item(c, c.items[0], o);
    return {own, run_control(c, c.items[0], own, o)};
  }
  ItemResult run(const std::string& binding, const std::string& item_extra = "",
                 std::optional<std::string> profile = {}, const std::string& repo_root = POPPER_SOURCE_DIR) {
    Contract c = contract_with(binding, item_extra);
    return run_item(c, c.items[0], options(profile, repo_root));
  }
  testing::TempDir dir_;
};

std::string gtest_binding(const std::string& filter, const std::string& more = "") {
  return "{kind: gtest, target: harness_fixture_gtest, filter: \"" + filter + "\"" + more + "}";
}

TEST(Process, AMissingExecutableIsNotStartedAndSaysWhy) {
  SpawnOptions o;
  o.argv = {"/nonexistent/falsifier", "--gtest_list_tests"};
  ProcessResult r = run_process(o);
  EXPECT_FALSE(r.started);
  EXPECT_EQ(r.describe(), "could not start: /nonexistent/falsifier: exec: No such file or directory");
  o.argv = {"/bin/true"};
  o.stdout_path = "/nonexistent/dir/out.txt";
  r = run_process(o);
  EXPECT_FALSE(r.started);
  EXPECT_EQ(r.start_error, "/bin/true: open stdout file: No such file or directory");
  o.stdout_path.clear();
  r = run_process(o);
  EXPECT_TRUE(r.exited_ok()) << r.describe();
}

TEST_F(Runner, PassingTestsSurvive) {
  ItemResult r = run(gtest_binding("Fixture.Passes:Fixture.AlsoPasses"));
  EXPECT_EQ(r.verdict, Verdict::kSurvived) << r.reason;
  EXPECT_EQ(r.reason, "2 tests passed");
  EXPECT_EQ(r.detail["counts"]["passed"], 2);
}

TEST_F(Runner, FailedAssertionIsFalsifiedWithItsMessage) {
  ItemResult r = run(gtest_binding("Fixture.Passes:Fixture.FailsWithMessage"));
  EXPECT_EQ(r.verdict, Verdict::kFalsified) << r.reason;
  EXPECT_NE(r.reason.find("1 of 2 tests failed: Fixture.FailsWithMessage"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("the fixture's claim is false"), std::string::npos) << r.reason;
}

TEST_F(Runner, SkipIsInconclusiveWithItsReason) {
  ItemResult r = run(gtest_binding("Fixture.SkipsWithReason"));
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_EQ(r.reason, "skipped: fixture needs a GPU");
}

TEST_F(Runner, CrashIsAnErrorAndTheHarnessCarriesOn) {
  RecordProperty("falsification_id", "harness: crashing falsifier");
  ItemResult r = run(gtest_binding("Fixture.Crashes"));
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_NE(r.reason.find("crashed: killed by signal 11 (SIGSEGV)"), std::string::npos) << r.reason;
  // The next item runs normally.
  EXPECT_EQ(run(gtest_binding("Fixture.Passes")).verdict, Verdict::kSurvived);
}

TEST_F(Runner, HangIsKilledAtTheTimeoutAndIsAnError) {
  RecordProperty("falsification_id", "harness: hanging falsifier");
  auto t0 = std::chrono::steady_clock::now();
  ItemResult r = run(gtest_binding("Fixture.Hangs", ", timeout_s: 1"));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_NE(r.reason.find("timed out after"), std::string::npos) << r.reason;
  EXPECT_LT(s, 10.0) << "SIGTERM is honoured by the default handler; SIGKILL follows within 2 s";
}

TEST_F(Runner, GarbageOutputIsAnErrorWithTheLogTail) {
  RecordProperty("falsification_id", "harness: garbage-printing falsifier");
  ItemResult r = run("{kind: gtest, target: harness_fixture_garbage, filter: \"*\"}");
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_NE(r.reason.find("unparsable output"), std::string::npos) << r.reason;
  // The log excerpt in the evidence is valid UTF-8 whatever the child printed.
  std::string dumped = r.detail.dump();
  EXPECT_NE(dumped.find("log_tail"), std::string::npos);
}

TEST_F(Runner, FilterMatchingNothingIsAnError) {
  ItemResult r = run(gtest_binding("Fixture.NoSuchTest"));
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_NE(r.reason.find("matched no tests"), std::string::npos) << r.reason;
}

TEST_F(Runner, TargetNotBuiltIsInconclusiveAndNamesIt) {
  ItemResult r =
      run("{kind: gtest, target: serve_dispatch_test_not_here, filter: \"*\"}", "    blocked_on: issue 5\n");
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_EQ(r.reason.rfind("blocked on issue 5: target serve_dispatch_test_not_here not built (no ", 0), 0u)
      << r.reason;
  EXPECT_FALSE(r.required) << "blocked items are optional for the gate";
}

TEST_F(Runner, GpuRequirementWithoutGpuIsInconclusive) {
  ItemResult r = run(gtest_binding("Fixture.Passes", ", requires: [gpu]"));
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_EQ(r.reason, "needs a CUDA GPU; none found (test: no GPU)");
}

TEST_F(Runner, MissingModelFileIsInconclusiveNeverSurvived) {
  ItemResult r = run(gtest_binding("Fixture.SeesModelEnvironment", ", model: models/absent.gguf"));
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_NE(r.reason.find("absent.gguf does not exist"), std::string::npos) << r.reason;
}

TEST_F(Runner, LargeModelIsNotBuiltUnlessAsked) {
  ItemResult r = run(gtest_binding("Fixture.SeesModelEnvironment", ", model: 30b-a3b-q4_k_m"));
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_NE(r.reason.find("pass --build-models"), std::string::npos) << r.reason;
}

// A repository whose trained qwen3moe model is the tiny synthetic F32 model under the trained
// name (the name, not the weights, is what resolution and the build look at).
std::string repo_with_trained_model(const testing::TempDir& dir) {
  const std::string trained = dir / (std::string(kTrainedModelDir) + "/trained-qwen3moe-bf16.gguf");
  std::filesystem::create_directories(std::filesystem::path(trained).parent_path());
  const std::string cmd =
      testing::build_dir() + "/harness/popper synth --quant f32 -q -o " + trained + " > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir.path();
}

TEST_F(Runner, QuantisedTrainedModelIsBuiltWithPopperQuantizeAndKeyedByTheSourcesDigest) {
  testing::TempDir repo;
  const std::string root = repo_with_trained_model(repo);
  ItemResult r =
      run(gtest_binding("Fixture.SeesModelEnvironment", ", model: trained-qwen3moe-q8_0"), "", {}, root);
  EXPECT_EQ(r.verdict, Verdict::kSurvived) << r.reason;
  EXPECT_EQ(r.detail["model"]["built_now"], true);
  EXPECT_NE(r.detail["model"]["quantize_from"].get<std::string>().find("trained-qwen3moe-bf16.gguf"),
            std::string::npos);
  const std::string path = r.detail["model"]["path"];
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file.value()->find("general.file_type")->as_u64(), 7u);  // LLAMA_FTYPE_MOSTLY_Q8_0
  // Another source file is another cache entry; the committed name resolves to the file itself.
  auto before = resolve_model("trained-qwen3moe-q8_0", dir_ / "models", root);
  const std::string cmd = testing::build_dir() + "/harness/popper synth --quant f32 --seed 3 -q -o " + root +
                          "/" + kTrainedModelDir + "/trained-qwen3moe-bf16.gguf > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto after = resolve_model("trained-qwen3moe-q8_0", dir_ / "models", root);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_NE(before->path, after->path);
  auto committed = resolve_model("trained-qwen3moe-bf16", dir_ / "models", root);
  ASSERT_TRUE(committed.ok());
  EXPECT_TRUE(committed->is_path);
}

TEST_F(Runner, TrainedModelWhoseSourceIsMissingIsInconclusiveNamingTheFile) {
  testing::TempDir empty_repo;
  ItemResult r = run(gtest_binding("Fixture.SeesModelEnvironment", ", model: trained-qwen3-q4_k_m"), "", {},
                     empty_repo.path());
  EXPECT_EQ(r.verdict, Verdict::kInconclusive);
  EXPECT_NE(r.reason.find("trained-qwen3-bf16.gguf does not exist"), std::string::npos) << r.reason;
  EXPECT_FALSE(resolve_model("trained-qwen3-q4_k_s", "/", empty_repo.path()).ok());
  EXPECT_FALSE(resolve_model("trained-llama-q8_0", "/", empty_repo.path()).ok());
}

TEST_F(Runner, MetricThresholdsAreJudgedOnTheInterval) {
  const std::string t = ", thresholds: [{metric: tokens_per_second, op: \">=\", value: 5}]";
  auto with = [&](const char* samples) {
    return run(gtest_binding("Fixture.ReportsMetric", t + ", env: {FIXTURE_SAMPLES: \"" + samples + "\"}"));
  };
  ItemResult high = with("7.9,8.0,8.1,7.95,8.05,8.0,7.9,8.1,8.0");
  EXPECT_EQ(high.verdict, Verdict::kSurvived) << high.reason;
  EXPECT_NE(high.reason.find("median tokens_per_second 8"), std::string::npos) << high.reason;
  EXPECT_EQ(high.detail["samples"]["Fixture.ReportsMetric"]["tokens_per_second"].size(), 9u);
  ItemResult low = with("3.9,4.0,4.1,3.95,4.05,4.0,3.9,4.1,4.0");
  EXPECT_EQ(low.verdict, Verdict::kFalsified) << low.reason;
  ItemResult straddle = with("4.5,5.5,4.6,5.4,4.9,5.1,4.7,5.3,5.0");
  EXPECT_EQ(straddle.verdict, Verdict::kInconclusive) << straddle.reason;
  EXPECT_NE(straddle.reason.find("CI straddles"), std::string::npos) << straddle.reason;
  ItemResult missing = run(gtest_binding("Fixture.Passes", t));
  EXPECT_EQ(missing.verdict, Verdict::kError) << missing.reason;
  // A passing test must report numbers; a failing one that measured nothing is falsified.
  EXPECT_EQ(with("").verdict, Verdict::kError);
  ItemResult nothing = run(gtest_binding("Fixture.FailsHavingMeasuredNothing", t));
  EXPECT_EQ(nothing.verdict, Verdict::kFalsified) << nothing.reason;
  EXPECT_NE(nothing.reason.find("every request failed"), std::string::npos) << nothing.reason;
}

TEST_F(Runner, ProfilesChooseTheModelAndTheirThresholds) {
  const std::string b =
      "{kind: gtest, target: harness_fixture_gtest, filter: Fixture.SeesModelEnvironment,"
      " profiles: [{name: small, model: models/a.gguf}, {name: big, model: models/b.gguf}]}";
  ItemResult def = run(b);
  EXPECT_EQ(def.profile, "small");
  EXPECT_NE(def.reason.find("a.gguf"), std::string::npos) << def.reason;
  ItemResult big = run(b, "", std::string("big"));
  EXPECT_EQ(big.profile, "big");
  EXPECT_NE(big.reason.find("b.gguf"), std::string::npos) << big.reason;
}

TEST_F(Runner, BenchmarkCountersAreJudgedAndSkipsAreInconclusive) {
  const std::string t = "thresholds: [{metric: tokens_per_second, op: \">=\", value: 50}]";
  ItemResult ok =
      run("{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_Throughput, " + t +
          ", env: {FIXTURE_TPS: \"100\"}}");
  EXPECT_EQ(ok.verdict, Verdict::kSurvived) << ok.reason;
  EXPECT_EQ(ok.detail["samples"]["BM_Fixture_Throughput/iterations:10"]["tokens_per_second"].size(), 9u)
      << ok.detail["samples"].dump();
  ItemResult slow =
      run("{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_Throughput, " + t +
          ", env: {FIXTURE_TPS: \"20\"}}");
  EXPECT_EQ(slow.verdict, Verdict::kFalsified) << slow.reason;
  ItemResult gpu =
      run("{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_NeedsGpu, " + t +
          ", repetitions: 1}");
  EXPECT_EQ(gpu.verdict, Verdict::kInconclusive) << gpu.reason;
  EXPECT_NE(gpu.reason.find("fixture needs a GPU"), std::string::npos) << gpu.reason;
  ItemResult broken =
      run("{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_Broken, " + t +
          ", repetitions: 1}");
  EXPECT_EQ(broken.verdict, Verdict::kError) << broken.reason;
}

TEST_F(Runner, BenchmarkWithNoThresholdUnderItsProfileIsInconclusiveNotSurvived) {
  const std::string b =
      "{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_Throughput,"
      " profiles: [{name: ci}, {name: full}],"
      " thresholds: [{metric: tokens_per_second, op: \">=\", value: 50, profile: full}]}";
  ItemResult ci = run(b);
  EXPECT_EQ(ci.verdict, Verdict::kInconclusive) << ci.reason;
  EXPECT_EQ(ci.reason,
            "no threshold applies under profile 'ci'; recorded tokens_per_second median 100 (figures in the "
            "evidence)");
  EXPECT_EQ(run(b, "", std::string("full")).verdict, Verdict::kSurvived);
}

TEST_F(Runner, CommandExitCodesMapToVerdicts) {
  EXPECT_EQ(run("{kind: command, command: [/bin/sh, -c, \"exit 0\"]}").verdict, Verdict::kSurvived);
  EXPECT_EQ(run("{kind: command, command: [/bin/sh, -c, \"echo nope >&2; exit 1\"]}").verdict,
            Verdict::kFalsified);
  ItemResult skip = run("{kind: command, command: [/bin/sh, -c, \"echo no server >&2; exit 77\"]}");
  EXPECT_EQ(skip.verdict, Verdict::kInconclusive);
  EXPECT_NE(skip.reason.find("no server"), std::string::npos) << skip.reason;
  EXPECT_EQ(run("{kind: command, command: [/bin/sh, -c, \"kill -SEGV $$\"]}").verdict, Verdict::kError);
  ItemResult metrics = run(
      "{kind: command, command: [/bin/sh, -c, \"echo '{\\\"metrics\\\": {\\\"pass_rate\\\": [1.0]}}' > "
      "$POPPER_METRICS_OUT\"], thresholds: [{metric: pass_rate, op: \">\", value: 0, statistic: exact}]}");
  EXPECT_EQ(metrics.verdict, Verdict::kSurvived) << metrics.reason;
}

TEST_F(Runner, AControlWhoseFaultTheCheckNoticesIsFalsified) {
  RecordProperty("falsification_id", "harness: a control under a fault its check notices is falsified");
  auto [own, control] =
      run_with_control(gtest_binding("Fixture.NoticesTheStaleKvFault"), "    control: kv_stale_position\n");
  EXPECT_EQ(own.verdict, Verdict::kSurvived) << own.reason;
  ASSERT_TRUE(control);
  EXPECT_TRUE(control->ran);
  EXPECT_EQ(control->verdict, Verdict::kFalsified) << control->reason;
  EXPECT_NE(control->reason.find("the KV cache read a stale position"), std::string::npos) << control->reason;
  EXPECT_FALSE(control->unfalsifiable());
  EXPECT_EQ(control->detail["env"]["POPPER_FAULTS"], "kv_stale_position");
  bool fail_fast = false;
  for (const auto& a : control->detail["argv"]) fail_fast |= a == "--gtest_fail_fast";
  EXPECT_TRUE(fail_fast) << "a control needs one counterexample: --gtest_fail_fast";
  EXPECT_FALSE(own.detail["env"].contains("POPPER_FAULTS")) << "the item's own run has no fault";
}

TEST_F(Runner, ACheckThatIgnoresItsControlFaultIsUnfalsifiable) {
  RecordProperty("falsification_id", "harness: a check that passes under its control fault is unfalsifiable");
  auto [own, control] = run_with_control(gtest_binding("Fixture.Passes"), "    control: kv_stale_position\n");
  EXPECT_EQ(own.verdict, Verdict::kSurvived);
  ASSERT_TRUE(control);
  EXPECT_EQ(control->verdict, Verdict::kSurvived);
  EXPECT_TRUE(control->unfalsifiable());
}

TEST_F(Runner, AControlRunsOnlyForASurvivedItemAndItsFilterNarrowsTheRun) {
  auto [failed, none] =
      run_with_control(gtest_binding("Fixture.FailsWithMessage"), "    control: kv_stale_position\n");
  EXPECT_EQ(failed.verdict, Verdict::kFalsified);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->ran);
  EXPECT_NE(none->reason.find("not run: the item is falsified"), std::string::npos) << none->reason;
  auto [own, narrowed] = run_with_control(
      gtest_binding("Fixture.Passes:Fixture.NoticesTheStaleKvFault"),
      "    control: {faults: [kv_stale_position], filter: Fixture.NoticesTheStaleKvFault, note: n}\n");
  EXPECT_EQ(own.reason, "2 tests passed");
  ASSERT_TRUE(narrowed && narrowed->ran);
  EXPECT_EQ(narrowed->verdict, Verdict::kFalsified);
  EXPECT_EQ(narrowed->detail["counts"]["ran"], 1) << "only the control's filter runs";
  auto [skipped, no_item_control] = run_with_control(gtest_binding("Fixture.SkipsWithReason"), "");
  EXPECT_FALSE(no_item_control) << "no control declared: nothing to run";
}

TEST_F(Runner, ABenchmarkControlRunsItsOwnRepetitionsAndFallsBelowTheFloor) {
  RecordProperty("falsification_id", "harness: a benchmark control runs with the control's repetitions");
  auto [own, control] = run_with_control(
      "{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_SlowedByDecodeSleep,"
      " repetitions: 9, thresholds: [{metric: tokens_per_second, op: \">=\", value: 50}]}",
      "    control: {faults: [decode_sleep], repetitions: 6}\n");
  EXPECT_EQ(own.verdict, Verdict::kSurvived) << own.reason;
  ASSERT_TRUE(control && control->ran);
  EXPECT_EQ(control->verdict, Verdict::kFalsified) << control->reason;
  auto has = [](const nlohmann::json& argv, const std::string& a) {
    for (const auto& x : argv)
      if (x == a) return true;
    return false;
  };
  EXPECT_TRUE(has(own.detail["argv"], "--benchmark_repetitions=9")) << own.detail["argv"];
  EXPECT_TRUE(has(control->detail["argv"], "--benchmark_repetitions=6")) << control->detail["argv"];
  // Fewer than 6 repetitions give no CI of the median: such a control could not decide.
  auto [own2, few] = run_with_control(
      "{kind: benchmark, target: falsifiers/harness_fixture_bench, filter: BM_Fixture_SlowedByDecodeSleep,"
      " thresholds: [{metric: tokens_per_second, op: \">=\", value: 50}]}",
      "    control: {faults: [decode_sleep], repetitions: 2}\n");
  ASSERT_TRUE(few && few->ran);
  EXPECT_EQ(few->verdict, Verdict::kInconclusive) << few->reason;
}

TEST_F(Runner, EvidenceFingerprintNamesTheItemTheFalsifierBinaryAndTheProfile) {
  Contract c = contract_with(gtest_binding("Fixture.Passes"));
  RunOptions o = options();
  ItemResult r = run_item(c, c.items[0], o);
  Fingerprint then = Fingerprint::from_json(r.detail["fingerprint"]);
  EXPECT_EQ(then.item_sha256, c.items[0].text_sha256);
  EXPECT_EQ(then.falsifier_sha256.size(), 64u);
  EXPECT_NE(then.falsifier.find("harness_fixture_gtest"), std::string::npos);
  EXPECT_TRUE(stale_reasons(then, current_fingerprint(c.items[0], o)).empty());
  // The same item with other text is another claim.
  Contract edited = contract_with(gtest_binding("Fixture.Passes"), "    test: rewritten\n");
  auto why = stale_reasons(then, current_fingerprint(edited.items[0], o));
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "item text changed");
  Fingerprint rebuilt = then;
  rebuilt.falsifier_sha256[0] = rebuilt.falsifier_sha256[0] == '0' ? '1' : '0';
  EXPECT_EQ(stale_reasons(rebuilt, current_fingerprint(c.items[0], o)),
            std::vector<std::string>{"falsifier rebuilt since"});
}

}  // namespace
}  // namespace popper::harness
