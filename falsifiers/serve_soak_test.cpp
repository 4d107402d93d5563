// Soak (issue 13 part 3; CTest label long): 10,000 mixed requests against one `popper serve`, and
// its resident memory flat across them: a leak of a few hundred bytes per request would show.
// The mix: plain and streamed chats, completions, rejected requests (400) and streams dropped
// mid-way, from four keep-alive clients on two slots.
#include <gtest/gtest.h>

#include <thread>

#include "falsifiers/serve_abuse_util.h"

namespace popper::testing {
namespace {

constexpr int kClients = 4;
constexpr int kRequests = 10'000;  // the figure
constexpr int kWarmup = 400;       // before the first RSS reading: arenas and caches settle
// RSS growth allowed from the end of warm-up to the end: 8 MiB over 9,600 requests is under
// 1 KiB a request, so any per-request leak of a response, prompt or stream buffer fails it.
constexpr long kMaxSoakGrowthKib = 8 * 1024;

// Request i of the mix; returns its status.
int one_request(ServerProcess& server, httplib::Client& c, int i) {
  json req = chat_body("soak " + std::to_string(i), 2);
  switch (i % 20) {
    case 0:
    case 1:  // streamed, read to the end
      req["stream"] = true;
      return post_sse("127.0.0.1", server.port(), "/v1/chat/completions", req).status;
    case 2: {  // streamed, dropped after the first event
      req["stream"] = true;
      req["max_tokens"] = 16;
      SseStream s = post_sse("127.0.0.1", server.port(), "/v1/chat/completions", req, 1);
      return s.events.empty() ? s.status : 200;
    }
    case 3:
    case 4: {  // rejected: a field out of bounds
      req["top_p"] = 0;
      auto r = post_json(c, "/v1/chat/completions", req);
      return r ? r->status : -1;
    }
    case 5: {
      auto r =
          post_json(c, "/v1/completions", json{{"prompt", "soak " + std::to_string(i)}, {"max_tokens", 2}});
      return r ? r->status : -1;
    }
    default: {
      auto r = post_json(c, "/v1/chat/completions", req);
      return r ? r->status : -1;
    }
  }
}

TEST(ServeSoak, TenThousandRequestsKeepResidentMemoryFlat) {
  RecordProperty("falsification_id", "FALSIFY-SERVE-ABUSE-SOAK");
  ServerProcess server(moe_model_path(), {"--parallel", "2", "--queue", "8", "--ctx", "128"});
  ASSERT_TRUE(server.ok()) << server.log();
  StatusTally tally;
  std::atomic<int> next{0};
  std::atomic<long> rss_warm{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&] {
      auto c = server.client();
      c->set_keep_alive(true);
      for (int i; (i = next.fetch_add(1)) < kRequests;) {
        if (i == kWarmup) rss_warm = server.rss_kib();
        const auto t = std::chrono::steady_clock::now();
        const int status = one_request(server, *c, i);  // before the clock is read
        tally.add(status, seconds_since(t));
      }
    });
  }
  for (auto& t : clients) t.join();
  const double seconds = seconds_since(t0);
  await_idle(server);
  const long rss_end = server.rss_kib();

  EXPECT_EQ(tally.total(), kRequests);
  EXPECT_EQ(tally.failures(), 0) << tally.summary();
  EXPECT_EQ(tally.count(400), kRequests / 10) << tally.summary();
  ASSERT_GT(rss_warm.load(), 0);
  EXPECT_LT(rss_end - rss_warm.load(), kMaxSoakGrowthKib) << rss_warm.load() << " -> " << rss_end << " KiB";
  expect_healthy_and_idle(server);
  std::printf("[figures] soak: %s in %.1f s (%.0f req/s); RSS %ld KiB after %d warm-up requests -> %ld KiB\n",
              tally.summary().c_str(), seconds, kRequests / seconds, rss_warm.load(), kWarmup, rss_end);
  RecordProperty("soak", tally.summary());
  RecordProperty("seconds", std::to_string(seconds));
  RecordProperty("rss_kib", std::to_string(rss_warm.load()) + " -> " + std::to_string(rss_end));
}

}  // namespace
}  // namespace popper::testing
