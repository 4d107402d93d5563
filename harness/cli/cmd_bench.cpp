// `popper bench`: play a chat corpus against a running server (engine/serve/bench.h) and write
// scores.json. Exit 0 when every task passed, 1 when any failed or errored, 2 bad input or an
// unreachable server.
#include <cstdio>
#include <string>

#include "engine/core/atomic_file.h"
#include "engine/serve/bench.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

struct BenchFlags {
  serve::BenchOptions bench;
  std::string out = "scores.json";
};

int run_bench(const BenchFlags& f) {
  auto scores = serve::run_bench(f.bench);
  if (!scores.ok()) {
    std::fprintf(stderr, "popper bench: %s\n", scores.message().c_str());
    return 2;
  }
  const nlohmann::json& s = scores.value();
  Status w = write_file_atomic(f.out, s.dump(2) + "\n");
  if (!w.ok()) {
    std::fprintf(stderr, "popper bench: %s\n", w.message().c_str());
    return 2;
  }
  for (const auto& t : s["tasks"]) {
    if (t["verdict"] != "pass") {
      std::fprintf(stderr, "  %-10s %-5s %s\n", t["id"].get<std::string>().c_str(),
                   t["verdict"].get<std::string>().c_str(), t.value("reason", std::string()).c_str());
    }
  }
  auto median = [&](const char* key) {
    const auto& m = s[key];
    return m.contains("median") ? m["median"].get<double>() : 0.0;
  };
  std::printf(
      "bench: %lld/%lld passed (%lld failed, %lld errors), student_pass_rate %.3f\n"
      "       latency median %.3f s, ttft median %.3f s, decode median %.1f tok/s, %.1f s wall at "
      "concurrency %d\n"
      "scores: %s\n",
      static_cast<long long>(s["passed"].get<int64_t>()), static_cast<long long>(s["n_tasks"].get<int64_t>()),
      static_cast<long long>(s["failed"].get<int64_t>()), static_cast<long long>(s["errors"].get<int64_t>()),
      s["student_pass_rate"].get<double>(), median("latency_s"), median("ttft_s"),
      median("decode_tokens_per_second"), s["wall_seconds"].get<double>(), f.bench.concurrency,
      f.out.c_str());
  return s["passed"].get<int64_t>() == s["n_tasks"].get<int64_t>() ? 0 : 1;
}

void register_bench(CLI::App& app) {
  static BenchFlags f;
  CLI::App* cmd =
      add_command(app, "bench", "Play a chat corpus against a running server and write scores.json",
                  [] { return run_bench(f); });
  cmd->add_option("--server", f.bench.server, "Server URL, e.g. http://127.0.0.1:8080")->required();
  cmd->add_option("--corpus", f.bench.corpus, "Corpus JSON (tasks with reference continuations)")->required();
  cmd->add_option("--concurrency", f.bench.concurrency, "Tasks in flight at once")->capture_default_str();
  cmd->add_option("--timeout", f.bench.timeout_s, "Per-request timeout in seconds")->capture_default_str();
  cmd->add_option("-o,--out", f.out, "Scores file")->capture_default_str();
}

}  // namespace
POPPER_REGISTER_COMMAND(46, register_bench);
}  // namespace popper::cli
