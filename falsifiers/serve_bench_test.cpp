// Falsifier of contracts/qwen3-moe-serve-dispatch-v1.yaml V1_004: `popper bench` plays the
// 20-task corpus against `popper serve`; each task must equal llama.cpp's greedy continuation of
// the same prompt on the same GGUF (falsifiers/fixtures/serve/<model>.corpus.json, made by
// scripts/make_serve_references.py). Reports student_pass_rate and per-task decode tokens/s as
// metrics; the contract's thresholds judge them.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/core/sha256.h"
#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

constexpr int kConcurrency = 4;
constexpr auto kBenchTimeout = std::chrono::seconds(3000);

std::string join(const json& samples) {
  std::ostringstream o;
  for (size_t i = 0; i < samples.size(); ++i) o << (i ? "," : "") << samples[i].get<double>();
  return o.str();
}

TEST(ServeBench, CorpusPassesANonZeroShareAgainstLlamaCppReferences) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_004");
  const char* name_env = std::getenv("POPPER_MODEL_NAME");
  const std::string name = name_env != nullptr && *name_env != '\0' ? name_env : "tiny-qwen3moe-q4_k_m";
  const fs::path corpus = fs::path(POPPER_SOURCE_DIR) / "falsifiers/fixtures/serve" / (name + ".corpus.json");
  if (!fs::exists(corpus)) {
    GTEST_SKIP() << "no reference corpus for model " << name << " (" << corpus.string()
                 << "); make it with scripts/make_serve_references.py";
  }
  const json header = json::parse(read_text(corpus));
  const std::string model = moe_model_path();
  std::string digest;
  if (const char* d = std::getenv("POPPER_MODEL_SHA256"); d != nullptr && *d != '\0') {
    digest = d;
  } else {
    auto h = sha256_file(model);
    ASSERT_TRUE(h.ok()) << h.message();
    digest = h.value();
  }
  if (digest != header["sha256"]) {
    GTEST_SKIP() << "the corpus references were made on sha256 " << header["sha256"].get<std::string>()
                 << " but the model is " << digest << "; regenerate with scripts/make_serve_references.py";
  }

  ServerProcess server(model, {"--parallel", "2"});
  ASSERT_TRUE(server.ok()) << server.log();
  const fs::path scores_path = serve_temp_dir() / "scores.json";
  ChildProcess bench({popper_bin(), "bench", "--server", server.url(), "--corpus", corpus.string(),
                      "--concurrency", std::to_string(kConcurrency), "-o", scores_path.string()},
                     serve_temp_dir() / "bench.log");
  const auto rc = bench.wait_exit(kBenchTimeout);
  ASSERT_TRUE(rc.has_value()) << "popper bench did not finish";
  ASSERT_TRUE(*rc == 0 || *rc == 1) << "popper bench exit " << *rc << ":\n" << bench.log();
  const json s = json::parse(read_text(scores_path));
  const double rate = s["student_pass_rate"];
  RecordProperty("metric.student_pass_rate", std::to_string(rate));
  if (s["decode_tokens_per_second"].contains("samples")) {
    RecordProperty("metric.decode_tokens_per_second", join(s["decode_tokens_per_second"]["samples"]));
  }
  RecordProperty("metric.ttft_seconds", join(s["ttft_s"].value("samples", json::array())));
  RecordProperty("metric.latency_seconds", join(s["latency_s"]["samples"]));
  RecordProperty("passed",
                 std::to_string(s["passed"].get<int>()) + "/" + std::to_string(s["n_tasks"].get<int>()));
  RecordProperty("bench_output", bench.log());
  for (const auto& t : s["tasks"]) {
    if (t["verdict"] != "pass") {
      RecordProperty("task_" + t["id"].get<std::string>(),
                     t["verdict"].get<std::string>() + ": " + t.value("reason", std::string()));
    }
  }
  EXPECT_EQ(s["errors"], 0) << bench.log();
  EXPECT_EQ(s["n_tasks"], header["tasks"].size());
  EXPECT_GT(rate, 0) << "no task matched llama.cpp's continuation:\n" << bench.log();
}

}  // namespace
}  // namespace popper::testing
