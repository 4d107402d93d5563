// Loopback load falsifier (issue 5): 8 clients x 50 requests against `popper serve` with two
// slots; every request must get 200 (zero 5xx: the queue holds every client) and the server's
// resident memory must not grow past warm-up.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <thread>

#include "falsifiers/sanitizer_util.h"
#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

constexpr int kClients = 8;
// Under a sanitizer every request costs several times more: fewer, still 8 clients at once.
constexpr int kRequestsPerClient = kUnderSanitizer ? 10 : 50;
constexpr int kWarmupRequests = 16;
// Growth allowed after warm-up: allocator caches and thread stacks settle within this; a leak
// of one response or KV cache per request (400 requests) would pass it many times over.
constexpr long kMaxRssGrowthKib = 32 * 1024;

TEST(ServeLoad, EightClientsFiftyRequestsEachGetZero5xxAndStableMemory) {
  ServerProcess server(moe_model_path(), {"--parallel", "2", "--queue", "16", "--ctx", "256"});
  ASSERT_TRUE(server.ok()) << server.log();
  {
    auto c = server.client();
    for (int i = 0; i < kWarmupRequests; ++i) {
      auto r = post_json(*c, "/v1/chat/completions", chat_body("warm up " + std::to_string(i), 8));
      ASSERT_TRUE(r && r->status == 200);
    }
  }
  const long rss_warm = server.rss_kib();
  std::mutex mu;
  std::map<int, int> statuses;  // status -> count (-1: no response)
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      auto c = server.client();
      c->set_keep_alive(true);
      for (int i = 0; i < kRequestsPerClient; ++i) {
        json req = chat_body("client " + std::to_string(k) + " request " + std::to_string(i), 8);
        req["temperature"] = 0.8;
        req["seed"] = k * 1000 + i;
        int status = -1;
        if (i % 5 == 4) {
          req["stream"] = true;
          status = post_sse("127.0.0.1", server.port(), "/v1/chat/completions", req).status;
        } else {
          auto r = post_json(*c, "/v1/chat/completions", req);
          status = r ? r->status : -1;
        }
        std::lock_guard<std::mutex> lock(mu);
        ++statuses[status];
      }
    });
  }
  for (auto& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long rss_end = server.rss_kib();
  auto c = server.client();
  // A handler releases its slot and admission just after its client has read the last byte
  // (the stream's [DONE]), so the gauges settle a moment after the clients return.
  auto m = get_metrics(*c);
  for (int tries = 0; tries < 100 && (m.at("popper_requests_admitted") != 0 || m.at("popper_slots_busy") != 0);
       ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = get_metrics(*c);
  }

  EXPECT_EQ(statuses[200], kClients * kRequestsPerClient);
  for (const auto& [status, n] : statuses) {
    EXPECT_TRUE(status == 200) << n << " requests got status " << status;
  }
  EXPECT_EQ(m.at("popper_requests_rejected_total"), 0);
  EXPECT_EQ(m.at("popper_slots_busy"), 0);
  EXPECT_EQ(m.at("popper_requests_admitted"), 0);
  ASSERT_GT(rss_warm, 0);
  // Under a sanitizer RSS grows with its shadow and quarantine; LeakSanitizer checks leaks at
  // the server's exit instead (below).
  if (!kUnderSanitizer) {
    EXPECT_LT(rss_end - rss_warm, kMaxRssGrowthKib)
        << "RSS " << rss_warm << " KiB after warm-up, " << rss_end << " KiB after";
  }
  EXPECT_TRUE(server.process().running());
  // A clean drain ends with status 0; under ASan that exit is where LeakSanitizer reports a leak
  // per request (its exit status is then not 0).
  server.process().signal(SIGTERM);
  EXPECT_EQ(server.process().wait_exit(std::chrono::seconds(60)), std::optional<int>(0)) << server.log();
  RecordProperty("requests", std::to_string(kClients * kRequestsPerClient));
  RecordProperty("seconds", std::to_string(seconds));
  RecordProperty("rss_kib", std::to_string(rss_warm) + " -> " + std::to_string(rss_end));
  RecordProperty("metric.requests_per_second", std::to_string(kClients * kRequestsPerClient / seconds));
}

}  // namespace
}  // namespace popper::testing
