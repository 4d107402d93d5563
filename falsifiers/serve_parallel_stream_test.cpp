// Four slots streaming at once, with clients that go away mid-stream (issue 13 part 3): every
// request is answered 200 or 503 (queue full), every stream that is read to its end ends with
// [DONE], and once the clients are gone no slot or admission place is held (each dropped
// generation is cancelled and counted).
#include <gtest/gtest.h>

#include <thread>

#include "falsifiers/serve_abuse_util.h"

namespace popper::testing {
namespace {

constexpr int kSlots = 4;
// Three clients per slot, and places (slots + queue) for all of them: the 503s that remain come
// from a client that asks again before its last handler has let go of its place.
constexpr int kClients = 12;
constexpr int kQueue = kClients - kSlots;
constexpr int kRequestsPerClient = 8;
constexpr int kDropAfterEvents = 2;  // the role event and one token: a drop in mid-generation

TEST(ServeParallelStream, FourSlotsWithClientsDroppedMidStreamLeakNoSlot) {
  RecordProperty("falsification_id", "FALSIFY-SERVE-ABUSE-PARALLEL-DROPS");
  ServerProcess server(moe_model_path(), {"--parallel", std::to_string(kSlots), "--queue",
                                          std::to_string(kQueue), "--ctx", "256"});
  ASSERT_TRUE(server.ok()) << server.log();
  StatusTally tally;
  std::atomic<int> dropped{0}, unfinished{0};
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      for (int i = 0; i < kRequestsPerClient; ++i) {
        json req = chat_body("stream " + std::to_string(k) + "." + std::to_string(i), 24);
        req["stream"] = true;
        req["temperature"] = 0.7;
        req["seed"] = k * 100 + i;
        // With 24 tokens to go a drop after the second event lands mid-generation, unless the
        // model ends early (then nothing is cancelled, which the bound below allows).
        const bool drop = (k + i) % 3 == 0;
        const auto t0 = std::chrono::steady_clock::now();
        SseStream s =
            post_sse("127.0.0.1", server.port(), "/v1/chat/completions", req, drop ? kDropAfterEvents : -1);
        // A dropped stream ends on the client's side with no status of its own; count what the
        // server had sent (200) so the tally holds every request.
        const int status = drop && s.events.size() >= size_t(kDropAfterEvents) ? 200 : s.status;
        tally.add(status, seconds_since(t0));
        if (drop && s.events.size() >= size_t(kDropAfterEvents)) ++dropped;
        if (!drop && s.status == 200 && (s.events.empty() || s.events.back() != "[DONE]")) ++unfinished;
      }
    });
  }
  for (auto& t : clients) t.join();
  auto m = await_idle(server);

  EXPECT_EQ(tally.failures(), 0) << tally.summary();
  EXPECT_EQ(tally.count(200) + tally.count(503), kClients * kRequestsPerClient) << tally.summary();
  EXPECT_GT(tally.count(200), 0) << tally.summary();
  EXPECT_EQ(unfinished.load(), 0) << "streams read to the end without [DONE]";
  EXPECT_GT(dropped.load(), 0) << "no client dropped mid-stream: the test tested nothing";
  // Each drop that landed while the slot was generating is cancelled, never more than dropped.
  EXPECT_LE(m["popper_requests_cancelled_total"], dropped.load());
  EXPECT_GT(m["popper_requests_cancelled_total"], 0) << "no generation was cancelled by a drop";
  expect_healthy_and_idle(server);
  std::printf("[figures] parallel 4 streaming: %s; %d dropped, %.0f cancelled, %.0f rejected\n",
              tally.summary().c_str(), dropped.load(), m["popper_requests_cancelled_total"],
              m["popper_requests_rejected_total"]);
  RecordProperty("streams", tally.summary());
}

}  // namespace
}  // namespace popper::testing
