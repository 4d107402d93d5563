// Falsifiers for `--backend cpu|cuda|auto` (engine/model/backend_factory.h) on `popper generate`
// and `popper serve`, and for the serving engine's shared-backend path: a bad value exits 2 naming
// it; cuda without a usable GPU (or without CUDA in the binary) exits 2 with the factory's reason,
// never a crash; auto on a machine without a GPU gives the CPU's tokens; the server reports its
// backend; slots sharing one backend (as they do on CUDA) give the texts of separate backends.
//
// The cuda-failure tests skip on a machine where the CUDA backend is compiled in and a device
// answers; the auto-equals-cpu tests skip there too (auto then picks the GPU).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "engine/model/backend_factory.h"
#include "engine/serve/engine.h"
#include "falsifiers/serve_test_util.h"
#include "harness/run/process.h"

namespace popper::testing {
namespace {

constexpr double kCliTimeoutS = 60;  // tiny model: each run takes well under a second

struct CliRun {
  harness::ProcessResult result;
  std::string out, err;
};

CliRun run_popper(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string tag = std::to_string(++counter);
  harness::SpawnOptions o;
  o.argv = {popper_bin()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.stdout_path = (serve_temp_dir() / ("backend-" + tag + ".out")).string();
  o.stderr_path = (serve_temp_dir() / ("backend-" + tag + ".err")).string();
  o.timeout_s = kCliTimeoutS;
  CliRun r;
  r.result = harness::run_process(o);
  r.out = read_text(o.stdout_path);
  r.err = read_text(o.stderr_path);
  return r;
}

// A usable CUDA device: the CUDA backend is compiled in and a device answers.
bool cuda_usable() { return make_backend(BackendKind::kCuda, 1, nullptr).ok(); }

// What the factory says when cuda cannot be made here.
std::string cuda_unusable_reason() {
  auto b = make_backend(BackendKind::kCuda, 1, nullptr);
  return b.ok() ? std::string() : b.message();
}

std::vector<std::string> generate_args(const std::string& backend) {
  std::vector<std::string> a = {
      "generate",     "--model", dense_model_path(), "--prompt-tokens", "1,2,3,4", "--threads", "2",
      "--max-tokens", "12"};
  if (!backend.empty()) {
    a.push_back("--backend");
    a.push_back(backend);
  }
  return a;
}

// The generated ids: stdout's first line ("5 17 3 ").
std::string token_line(const std::string& out) { return out.substr(0, out.find('\n')); }

TEST(BackendSelect, GenerateRejectsAnUnknownBackendWithExit2NamingIt) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  const CliRun r = run_popper(generate_args("bogus"));
  EXPECT_EQ(r.result.signal, 0) << r.result.describe();
  EXPECT_EQ(r.result.exit_code, 2) << r.result.describe() << "\n" << r.err;
  EXPECT_NE(r.err.find("'bogus'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cpu, cuda or auto"), std::string::npos) << r.err;
}

TEST(BackendSelect, GenerateWithCudaExits2WithTheFactoryReasonWhenNoGpuIsUsable) {
  if (cuda_usable()) GTEST_SKIP() << "a CUDA device answers here; nothing to refuse";
  const CliRun r = run_popper(generate_args("cuda"));
  EXPECT_EQ(r.result.signal, 0) << r.result.describe();
  EXPECT_EQ(r.result.exit_code, 2) << r.result.describe() << "\n" << r.err;
  EXPECT_NE(r.err.find("--backend cuda: " + cuda_unusable_reason()), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "no tokens may be printed when the backend cannot be made";
}

TEST(BackendSelect, GenerateAutoAndTheDefaultGiveTheCpuTokensWhenNoGpuIsUsable) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  if (cuda_usable()) GTEST_SKIP() << "a CUDA device answers here; auto picks it";
  const CliRun cpu = run_popper(generate_args("cpu"));
  const CliRun autob = run_popper(generate_args("auto"));
  const CliRun dflt = run_popper(generate_args(""));
  for (const CliRun* r : {&cpu, &autob, &dflt}) {
    ASSERT_TRUE(r->result.exited_ok()) << r->result.describe() << "\n" << r->err;
    EXPECT_NE(r->err.find("backend: cpu,"), std::string::npos) << r->err;
    EXPECT_NE(r->out.find("backend cpu\n"), std::string::npos) << r->out;
  }
  const std::string tokens = token_line(cpu.out);
  ASSERT_FALSE(tokens.empty()) << cpu.out;
  EXPECT_EQ(token_line(autob.out), tokens);
  EXPECT_EQ(token_line(dflt.out), tokens);
}

TEST(BackendSelect, ServeRejectsAnUnknownBackendWithExit2NamingIt) {
  RecordProperty("falsification_id", "FALSIFY-CUDA_BACKEND_PARITY_V1_003");
  const CliRun r = run_popper({"serve", "--model", dense_model_path(), "--port", "0", "--backend", "bogus"});
  EXPECT_EQ(r.result.signal, 0) << r.result.describe();
  EXPECT_EQ(r.result.exit_code, 2) << r.result.describe() << "\n" << r.err;
  EXPECT_NE(r.err.find("'bogus'"), std::string::npos) << r.err;
}

TEST(BackendSelect, ServeWithCudaExits2WithTheFactoryReasonWhenNoGpuIsUsable) {
  if (cuda_usable()) GTEST_SKIP() << "a CUDA device answers here; nothing to refuse";
  const CliRun r = run_popper({"serve", "--model", dense_model_path(), "--port", "0", "--backend", "cuda"});
  EXPECT_EQ(r.result.signal, 0) << r.result.describe();
  EXPECT_FALSE(r.result.timed_out) << "the server started instead of refusing";
  EXPECT_EQ(r.result.exit_code, 2) << r.result.describe() << "\n" << r.err;
  EXPECT_NE(r.err.find("--backend: " + cuda_unusable_reason()), std::string::npos) << r.err;
}

// The backend's name in /health, /metrics and /v1/models (which `popper bench` copies into
// scores.json as served_models), and completions that work on it.
TEST(BackendSelect, ServeReportsItsBackendAndAutoAnswersAsTheCpuWhenNoGpuIsUsable) {
  const bool gpu = cuda_usable();
  const json body = chat_body("Name the backend.", 8);
  std::string cpu_text;
  for (const std::string backend : {"cpu", "auto"}) {
    SCOPED_TRACE("--backend " + backend);
    ServerProcess server(dense_model_path(), {"--backend", backend, "--parallel", "2"});
    ASSERT_TRUE(server.ok()) << "server did not start:\n" << server.log();
    const std::string expect = backend == "auto" && gpu ? "cuda" : "cpu";
    auto c = server.client();
    auto h = c->Get("/health");
    ASSERT_TRUE(h && h->status == 200);
    EXPECT_EQ(json::parse(h->body)["backend"], expect) << h->body;
    auto m = c->Get("/v1/models");
    ASSERT_TRUE(m && m->status == 200);
    EXPECT_EQ(json::parse(m->body)["data"][0]["meta"]["backend"], expect) << m->body;
    const auto metrics = get_metrics(*c);
    const std::string info = "popper_backend_info{backend=\"" + expect + "\",shared=\"" +
                             (expect == "cpu" ? "false" : "true") + "\"}";
    EXPECT_EQ(metrics.count(info), 1u) << info;
    if (metrics.count(info)) {
      EXPECT_EQ(metrics.at(info), 1);
    }
    auto r = post_json(*c, "/v1/chat/completions", body);
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << r->body;
    const std::string text = json::parse(r->body)["choices"][0]["message"]["content"];
    if (backend == "cpu") {
      cpu_text = text;
    } else if (!gpu) {
      EXPECT_EQ(text, cpu_text) << "auto fell back to the CPU but answered differently";
    }
  }
}

// On CUDA every slot shares one backend and the engine serialises their forward calls. The same
// path is forced here on the CPU (share_backend): concurrent requests on shared slots must give
// exactly the texts that one slot with its own backend gives for them one after another.
TEST(BackendSelect, SlotsSharingOneBackendGiveTheTextsOfSeparateBackendsUnderConcurrency) {
  constexpr int kRequests = 4;
  constexpr int kMaxTokens = 16;
  serve::EngineOptions o;
  o.model_path = moe_model_path();
  o.threads = 2;
  o.ctx = 256;
  o.parallel = 1;
  auto single = serve::Engine::load(o);
  ASSERT_TRUE(single.ok()) << single.message();
  EXPECT_FALSE(single.value()->backend_shared());
  o.parallel = kRequests;
  o.share_backend = true;
  auto shared = serve::Engine::load(o);
  ASSERT_TRUE(shared.ok()) << shared.message();
  ASSERT_TRUE(shared.value()->backend_shared());
  EXPECT_STREQ(shared.value()->backend_name(), "cpu");

  const auto prompt = single.value()->tokenizer().encode("Tell me about shared backends.");
  auto params = [](int i) {
    serve::RunParams p;
    p.max_tokens = kMaxTokens;
    p.sampling = {0.9f, 0, 1.0f, uint64_t(100 + i)};  // sampled, so each request differs
    return p;
  };
  std::vector<std::string> want(kRequests), got(kRequests), errors(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    auto r = single.value()->run(prompt, params(i), {});
    ASSERT_TRUE(r.ok()) << r.message();
    want[i] = r.value().text;
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      auto r = shared.value()->run(prompt, params(i), {});
      if (r.ok()) {
        got[i] = r.value().text;
      } else {
        errors[i] = r.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(errors[i], "") << "request " << i;
    EXPECT_EQ(got[i], want[i]) << "request " << i;
  }
}

}  // namespace
}  // namespace popper::testing
