// The server under abuse (issue 13 part 3), over loopback against `popper serve` on the tiny
// models: slow clients, endless and oversized bodies, thousands of dropped connections, every
// request field at its bounds, and four streaming slots with clients dropped mid-stream. Each
// scenario checks that the server keeps serving, answers only 2xx/4xx/503 (never 5xx), and
// leaks no slot, admission place or socket (metrics and /proc after the scenario).
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "falsifiers/sanitizer_util.h"
#include "falsifiers/serve_abuse_util.h"

namespace popper::testing {
namespace {

using std::chrono::milliseconds;

// Time-outs the abuse servers run with: short, so the slow clients are cut off within the test.
constexpr const char* kHeaderTimeoutS = "1";
constexpr const char* kBodyTimeoutS = "1";
constexpr const char* kIdleTimeoutS = "0.5";
constexpr milliseconds kHeaderTimeout{1000};
// A refusal must arrive within its time-out plus this: one poll slice and a loaded 2-core machine.
constexpr milliseconds kRefusalSlack{2000};
// A slow client sends a byte this often: under --idle-timeout, so only the total deadline stops it.
constexpr milliseconds kSlowByteEvery{150};

std::vector<std::string> abuse_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--ctx",          "256",         "--header-timeout", kHeaderTimeoutS,
                                "--body-timeout", kBodyTimeoutS, "--idle-timeout",   kIdleTimeoutS,
                                "--max-body-mib", "1",           "--max-header-kib", "16"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Sends `head` then `trickle` one byte at a time, every kSlowByteEvery, until the server answers
// or closes; returns what it answered and how long that took.
struct SlowResult {
  int status = 0;
  double seconds = 0;
};
SlowResult slow_client(int port, const std::string& head, const std::string& trickle) {
  RawConn c(port);
  const auto t0 = std::chrono::steady_clock::now();
  SlowResult r;
  if (!c.ok() || !c.send(head)) return r;
  for (size_t i = 0; i < trickle.size() && !c.readable(kSlowByteEvery); ++i) {
    if (!c.send(trickle.substr(i, 1))) break;
  }
  r.status = http_status(c.read_until_close(kHeaderTimeout + kRefusalSlack));
  r.seconds = seconds_since(t0);
  return r;
}

TEST(ServeAbuse, SlowHeaderAndSlowBodyClientsAreTimedOutWhileOthersAreServed) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_001");
  ServerProcess server(dense_model_path(), abuse_args({"--parallel", "2"}));
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string body = chat_body("hello", 4).dump();
  // Enough trickle to outlast every deadline by far: the server, not the data, must end it.
  const std::string endless_header(200, 'a');
  constexpr int kSlowEach = 4;  // per kind: under the worker count, so others still get a thread
  std::vector<SlowResult> slow(2 * kSlowEach);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSlowEach; ++i) {
    threads.emplace_back([&, i] {
      slow[i] = slow_client(server.port(),
                            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ", endless_header);
    });
    threads.emplace_back([&, i] {
      slow[kSlowEach + i] = slow_client(server.port(),
                                        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                        "application/json\r\nContent-Length: " +
                                            std::to_string(body.size() + 100) + "\r\n\r\n",
                                        body);
    });
  }
  // Meanwhile, ordinary clients: served at once, not after the slow ones time out.
  StatusTally normal;
  auto c = server.client();
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = post_json(*c, "/v1/chat/completions", chat_body("ordinary " + std::to_string(i), 4));
    normal.add(r ? r->status : -1, seconds_since(t0));
  }
  for (auto& t : threads) t.join();

  for (int i = 0; i < 2 * kSlowEach; ++i) {
    const char* kind = i < kSlowEach ? "slow-header" : "slow-body";
    EXPECT_EQ(slow[i].status, 408) << kind << " client " << i;
    EXPECT_LT(slow[i].seconds, std::chrono::duration<double>(kHeaderTimeout + kRefusalSlack).count()) << kind;
  }
  EXPECT_EQ(normal.count(200), 20) << normal.summary();
  // Served while the slow clients held their connections: well inside their time-out.
  EXPECT_LT(normal.percentile(0.99), std::chrono::duration<double>(kHeaderTimeout).count())
      << normal.summary();
  expect_healthy_and_idle(server);
  RecordProperty("normal", normal.summary());
  std::printf(
      "[figures] slow clients: %d x 408 (max %.2f s); normal %s\n", 2 * kSlowEach,
      std::max_element(slow.begin(), slow.end(), [](auto& a, auto& b) { return a.seconds < b.seconds; })
          ->seconds,
      normal.summary().c_str());
}

// The negative control: with the guard's bounds off (fault serve_unbounded_reads, httplib's own
// reading) the same slow-header client still holds its connection when the time-out has passed.
TEST(ServeAbuse, ControlWithoutTheGuardASlowClientIsNotTimedOut) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_001 control (serve_unbounded_reads)");
  ::setenv("POPPER_FAULTS", "serve_unbounded_reads", 1);  // inherited by the server only
  ServerProcess server(dense_model_path(), abuse_args());
  ::unsetenv("POPPER_FAULTS");
  ASSERT_TRUE(server.ok()) << server.log();
  // Trickled for 30 x kSlowByteEvery = 4.5 s, past the time-out and its slack: a bounded server
  // ends it after about 1 s, an unbounded one only once the client stops sending.
  const SlowResult r = slow_client(
      server.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ", std::string(30, 'a'));
  EXPECT_GT(r.seconds, std::chrono::duration<double>(kHeaderTimeout + kRefusalSlack).count())
      << "the slow client was cut off with the guard's bounds off (status " << r.status
      << "): the check cannot tell a bounded server from an unbounded one";
}

TEST(ServeAbuse, OversizedAndUnframedBodiesAreRefusedBeforeTheyAreRead) {
  RecordProperty("falsification_id", "FALSIFY-HARDENING_V1_002");
  ServerProcess server(dense_model_path(), abuse_args());
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string post =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";

  // A Content-Length of 1 TiB: 413 at once, while the client has sent a few KiB of it.
  {
    RawConn c(server.port());
    ASSERT_TRUE(c.send(post + "Content-Length: 1099511627776\r\n\r\n" + std::string(4096, '{')));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string resp = c.read_until_close(kHeaderTimeout + kRefusalSlack);
    EXPECT_EQ(http_status(resp), 413) << resp;
    EXPECT_NE(resp.find("payload_too_large"), std::string::npos) << resp;
    EXPECT_LT(seconds_since(t0), 1.0) << "413 came only after a time-out";
  }
  // An endless chunked body: cut off near the 1 MiB limit; the sender is stopped long before
  // it could send its 256 MiB.
  {
    RawConn c(server.port());
    ASSERT_TRUE(c.send(post + "Transfer-Encoding: chunked\r\n\r\n"));
    std::atomic<size_t> sent{0};
    std::thread sender([&] {
      const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";
      while (sent < (256u << 20) && c.send(chunk)) sent += chunk.size();
    });
    const std::string resp = c.read_until_close(milliseconds(10'000));
    ::shutdown(c.fd(), SHUT_RDWR);  // unblocks the sender if the server never closed
    sender.join();
    EXPECT_EQ(http_status(resp), 413) << resp.substr(0, 200);
    EXPECT_LT(sent.load(), size_t(64u << 20)) << "the server kept reading the endless body";
    std::printf("[figures] endless chunked body: 413 after the client sent %zu KiB\n", sent.load() >> 10);
  }
  // The other framings: each a 4xx naming the problem, never a read until EOF.
  struct Case {
    std::string request;
    int status;
    const char* why;
  };
  const std::vector<Case> cases = {
      {post + "\r\n", 411, "POST without a length"},
      {post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both framings"},
      {post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "two lengths"},
      {post + "Content-Length: -1\r\n\r\n", 400, "negative length"},
      {post + "Content-Length: 12abc\r\n\r\n", 400, "length not a number"},
      {post + "Transfer-Encoding: gzip\r\n\r\n", 400, "unsupported transfer coding"},
      {"GET /health HTTP/1.1\r\nX-Big: " + std::string(32 << 10, 'h') + "\r\n\r\n", 431,
       "header over 16 KiB"},
      {"GET /" + std::string(32 << 10, 'p'), 431, "request line over 16 KiB, no newline"},
  };
  for (const Case& k : cases) {
    RawConn c(server.port());
    c.send(k.request);
    const std::string resp = c.read_until_close(kHeaderTimeout + kRefusalSlack);
    EXPECT_EQ(http_status(resp), k.status) << k.why << ": " << resp.substr(0, 300);
    EXPECT_TRUE(c.closed_by_peer()) << k.why << ": connection left open after a refusal";
  }
  expect_healthy_and_idle(server);
}

TEST(ServeAbuse, ThousandsOfConnectionsOpenedAndDroppedLeakNoSocketOrSlot) {
  RecordProperty("falsification_id", "FALSIFY-SERVE-ABUSE-CONNECTION-CHURN");
  ServerProcess server(dense_model_path(), abuse_args({"--parallel", "2", "--queue", "4"}));
  ASSERT_TRUE(server.ok()) << server.log();
  const int fds_before = fd_count(server);  // before any client: no connection open
  {
    auto c = server.client();
    ASSERT_EQ(post_json(*c, "/v1/chat/completions", chat_body("warm", 2))->status, 200);
  }
  const long rss_before = server.rss_kib();
  constexpr int kConnections = 3000;
  constexpr int kBatch = 100;  // open at once; under the fd limit of a default shell
  const std::string chat = chat_body("dropped", 2).dump();
  const std::string full =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(chat.size()) + "\r\n\r\n" + chat;
  const auto t0 = std::chrono::steady_clock::now();
  for (int done = 0; done < kConnections; done += kBatch) {
    std::vector<std::unique_ptr<RawConn>> open;
    for (int i = 0; i < kBatch; ++i) {
      auto conn = std::make_unique<RawConn>(server.port());
      ASSERT_TRUE(conn->ok()) << "connection " << done + i << " refused";
      // Three ways to drop: at once, mid-request, and after a whole request (unread answer).
      const int kind = (done + i) % 10;
      if (kind == 1) conn->send(full.substr(0, full.size() / 2));
      if (kind == 2 && (done + i) % 50 == 2) conn->send(full);
      open.push_back(std::move(conn));
    }
  }
  const double churn_s = seconds_since(t0);
  auto m = await_idle(server);
  const int fds_after = await_fd_count(server, fds_before);
  const long rss_after = server.rss_kib();
  // At most as many: the first count may catch the server still holding the port file's directory fd.
  EXPECT_LE(fds_after, fds_before) << "sockets leaked";
  // Under a sanitizer RSS grows with its shadow and quarantine (falsifiers/sanitizer_util.h).
  if (!kUnderSanitizer) {
    EXPECT_LT(rss_after - rss_before, kMaxRssGrowthKib) << rss_before << " -> " << rss_after << " KiB";
  }
  expect_healthy_and_idle(server);
  std::printf("[figures] %d connections opened and dropped in %.2f s; fds %d -> %d; RSS %ld -> %ld KiB\n",
              kConnections, churn_s, fds_before, fds_after, rss_before, rss_after);
  RecordProperty("rss_kib", std::to_string(rss_before) + " -> " + std::to_string(rss_after));
}

}  // namespace
}  // namespace popper::testing
