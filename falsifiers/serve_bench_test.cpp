// Falsifier of contracts/qwen3-moe-serve-dispatch-v1.yaml V1_004..V1_006: `popper bench` plays
// the held-out task corpus (falsifiers/fixtures/trained/tasks.json, scripts/train_tiny.py)
// against `popper serve`; a task passes when the answer parsed from the reply is right
// (engine/serve/task_check.h), never by token equality with another engine.
//
// The model is $POPPER_MODEL (set by `popper run`) or the committed trained qwen3moe. Reported
// as metrics for the contract's thresholds: student_pass_rate, per-family pass rates, decode
// tokens/s per task, and for a quantised model accuracy_drop (the BF16 file's pass rate minus
// this one's, both played here).
#include <gtest/gtest.h>

#include <sstream>

#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

constexpr int kConcurrency = 4;
constexpr auto kBenchTimeout = std::chrono::seconds(3000);

fs::path trained_dir() { return fs::path(POPPER_SOURCE_DIR) / "falsifiers/fixtures/trained"; }
fs::path task_corpus() { return trained_dir() / "tasks.json"; }
std::string trained_moe() { return (trained_dir() / "trained-qwen3moe-bf16.gguf").string(); }

std::string model_under_test() {
  if (const char* p = std::getenv("POPPER_MODEL"); p != nullptr && *p != '\0') return p;
  return trained_moe();
}

std::string join(const json& samples) {
  std::ostringstream o;
  for (size_t i = 0; i < samples.size(); ++i) o << (i ? "," : "") << samples[i].get<double>();
  return o.str();
}

// Serves `model`, plays the task corpus against it, returns the scores (bench.h).
json play_corpus(const std::string& model, const std::string& tag) {
  ServerProcess server(model, {"--parallel", "2"});
  EXPECT_TRUE(server.ok()) << server.log();
  if (!server.ok()) return json();
  const fs::path scores_path = serve_temp_dir() / (tag + ".scores.json");
  ChildProcess bench({popper_bin(), "bench", "--server", server.url(), "--corpus", task_corpus().string(),
                      "--concurrency", std::to_string(kConcurrency), "-o", scores_path.string()},
                     serve_temp_dir() / (tag + ".bench.log"));
  const auto rc = bench.wait_exit(kBenchTimeout);
  EXPECT_TRUE(rc.has_value()) << "popper bench did not finish";
  EXPECT_TRUE(rc && (*rc == 0 || *rc == 1)) << "popper bench exit " << rc.value_or(-1) << ":\n"
                                            << bench.log();
  if (!rc || (*rc != 0 && *rc != 1)) return json();
  json s = json::parse(read_text(scores_path));
  EXPECT_EQ(s["errors"], 0) << bench.log();
  EXPECT_EQ(s["n_tasks"], json::parse(read_text(task_corpus()))["tasks"].size());
  return s;
}

void record_scores(const json& s, const std::string& prefix) {
  ::testing::Test::RecordProperty("metric." + prefix + "student_pass_rate",
                                  std::to_string(s["student_pass_rate"].get<double>()));
  for (const auto& [family, f] : s["families"].items()) {
    ::testing::Test::RecordProperty("metric." + prefix + "pass_rate_" + family,
                                    std::to_string(f["pass_rate"].get<double>()));
  }
  ::testing::Test::RecordProperty(prefix + "passed", std::to_string(s["passed"].get<int>()) + "/" +
                                                         std::to_string(s["n_tasks"].get<int>()));
  int shown = 0;
  for (const auto& t : s["tasks"]) {
    if (t["verdict"] != "pass" && shown++ < 20) {
      ::testing::Test::RecordProperty(
          prefix + "task_" + t["id"].get<std::string>(),
          t["verdict"].get<std::string>() + ": " + t.value("reason", std::string()));
    }
  }
}

TEST(ServeBench, ModelAnswersTheHeldOutTasks) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_004");
  ASSERT_TRUE(fs::exists(task_corpus())) << task_corpus() << " is missing (scripts/train_tiny.py install)";
  const std::string model = model_under_test();
  ASSERT_TRUE(fs::exists(model)) << model;
  const json s = play_corpus(model, "model");
  ASSERT_FALSE(s.is_null());
  record_scores(s, "");
  if (s["decode_tokens_per_second"].contains("samples")) {
    RecordProperty("metric.decode_tokens_per_second", join(s["decode_tokens_per_second"]["samples"]));
  }
  RecordProperty("metric.ttft_seconds", join(s["ttft_s"].value("samples", json::array())));
  RecordProperty("metric.latency_seconds", join(s["latency_s"]["samples"]));
  std::printf("%s: %d/%d tasks right (%.4f)\n", model.c_str(), s["passed"].get<int>(),
              s["n_tasks"].get<int>(), s["student_pass_rate"].get<double>());
}

// Negative control of V1_004: the scorer must not pass tasks a model cannot do. The random
// synthetic tiny qwen3moe plays the same corpus and must answer next to nothing.
constexpr double kRandomModelPassRateCeiling = 0.05;  // a random model may hit a few 1-digit counts

TEST(ServeBench, ControlRandomModelAnswersNextToNothing) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_004");
  const json s = play_corpus(synth_tiny(SynthArch::kQwen3Moe, SynthQuant::kQ4_K_M), "control");
  ASSERT_FALSE(s.is_null());
  RecordProperty("control_pass_rate", std::to_string(s["student_pass_rate"].get<double>()));
  EXPECT_LE(s["student_pass_rate"].get<double>(), kRandomModelPassRateCeiling)
      << "the task check passes a random-weight model's replies";
}

TEST(ServeBench, QuantisedModelLosesABoundedShareAgainstBf16) {
  RecordProperty("falsification_id", std::getenv("POPPER_ITEM_ID") ? std::getenv("POPPER_ITEM_ID") : "");
  const char* p = std::getenv("POPPER_MODEL");
  if (p == nullptr || *p == '\0')
    GTEST_SKIP() << "needs POPPER_MODEL: a quantised trained model (popper run builds it)";
  const json base = play_corpus(trained_moe(), "bf16");
  const json quant = play_corpus(p, "quant");
  ASSERT_FALSE(base.is_null() || quant.is_null());
  record_scores(base, "bf16_");
  record_scores(quant, "");
  const double drop = base["student_pass_rate"].get<double>() - quant["student_pass_rate"].get<double>();
  RecordProperty("metric.accuracy_drop", std::to_string(drop));
  std::printf("%s: pass rate %.4f, BF16 %.4f, drop %.4f\n", p, quant["student_pass_rate"].get<double>(),
              base["student_pass_rate"].get<double>(), drop);
}

}  // namespace
}  // namespace popper::testing
