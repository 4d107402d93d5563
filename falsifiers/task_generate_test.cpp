// Falsifier of contracts/qwen3-moe-forward-v1.yaml V1_009: the trained dense qwen3 model
// answers the held-out tasks (falsifiers/fixtures/trained/tasks.json) through `popper
// generate --chat`, the command a user runs. A task passes when the answer parsed from the
// printed text is right (engine/serve/task_check.h). Reports student_pass_rate and per-family
// pass rates as metrics; the contract's threshold judges them.
//
// POPPER_TASKS_PER_FAMILY=N plays only the first N tasks of each family: the ASan run
// (scripts/test-sanitize.sh) checks the memory safety of the path, which 300 launches under a
// sanitizer repeat at a minute's cost. A sampled run records no student_pass_rate, so a contract
// cannot be judged on a subset by accident.
#include <gtest/gtest.h>

#include "engine/serve/task_check.h"
#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

constexpr auto kGenerateTimeout = std::chrono::seconds(60);

// The POPPER_TASKS_PER_FAMILY limit: 0 (every task) when unset.
int tasks_per_family() {
  const char* env = std::getenv("POPPER_TASKS_PER_FAMILY");
  if (env == nullptr || *env == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  if (*end != '\0' || n <= 0 || n > 1000000) {
    ADD_FAILURE() << "POPPER_TASKS_PER_FAMILY='" << env << "': want a positive whole number";
    return -1;
  }
  return int(n);
}

fs::path trained_dir() { return fs::path(POPPER_SOURCE_DIR) / "falsifiers/fixtures/trained"; }

// The text `popper generate` printed between "text: " and the "finish:" line.
std::string printed_text(const std::string& out) {
  const size_t a = out.find("\ntext: ");
  const size_t b = out.rfind("\nfinish: ");
  if (a == std::string::npos || b == std::string::npos || b < a) return {};
  return out.substr(a + 7, b - a - 7);
}

TEST(TaskGenerate, DenseModelAnswersTheHeldOutTasksThroughPopperGenerate) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_FORWARD_V1_009");
  const char* env = std::getenv("POPPER_MODEL");
  const std::string model =
      env != nullptr && *env != '\0' ? env : (trained_dir() / "trained-qwen3-bf16.gguf").string();
  ASSERT_TRUE(fs::exists(model)) << model;
  const int per_family = tasks_per_family();
  ASSERT_GE(per_family, 0);
  const json corpus = json::parse(read_text(trained_dir() / "tasks.json"));
  std::map<std::string, std::pair<int, int>> families;  // family -> (right, total)
  int right = 0, total = 0, shown = 0;
  for (const auto& task : corpus["tasks"]) {
    const std::string id = task["id"];
    auto& f = families[task["family"].get<std::string>()];
    if (per_family > 0 && f.second >= per_family) continue;
    const std::string prompt = task["messages"][0]["content"];
    const fs::path log = serve_temp_dir() / "generate.log";
    ChildProcess gen({popper_bin(), "generate", "--model", model, "--chat", "--prompt", prompt,
                      "--max-tokens", std::to_string(task["max_tokens"].get<int>()), "--threads", "1"},
                     log);
    const auto rc = gen.wait_exit(kGenerateTimeout);
    ASSERT_TRUE(rc.has_value()) << id << ": popper generate did not finish";
    ASSERT_EQ(*rc, 0) << id << ":\n" << gen.log();
    const std::string text = printed_text(gen.log());
    const bool ok = serve::task_answer_matches(text, task["answer"].get<std::string>());
    f.first += ok;
    f.second += 1;
    right += ok;
    total += 1;
    if (!ok && shown++ < 20) {
      RecordProperty("task_" + id, "answered '" + serve::parse_task_answer(text) + "', want '" +
                                       task["answer"].get<std::string>() + "'");
    }
  }
  ASSERT_GT(total, 0);
  if (per_family > 0) {
    RecordProperty("sampled", std::to_string(per_family) + " tasks per family");
    RecordProperty("sampled_pass_rate", std::to_string(double(right) / total));
  } else {
    RecordProperty("metric.student_pass_rate", std::to_string(double(right) / total));
    for (const auto& [family, f] : families) {
      RecordProperty("metric.pass_rate_" + family, std::to_string(double(f.first) / f.second));
    }
  }
  RecordProperty("passed", std::to_string(right) + "/" + std::to_string(total));
  std::printf("%s: %d/%d tasks right through popper generate --chat\n", model.c_str(), right, total);
}

}  // namespace
}  // namespace popper::testing
