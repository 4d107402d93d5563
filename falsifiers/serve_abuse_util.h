// Shared by the serve abuse falsifiers (serve_abuse_test, serve_bounds_test,
// serve_parallel_stream_test, serve_soak_test): status and latency tallies, and the checks that
// end every scenario (the server still serves, and holds no slot, admission place or socket).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "falsifiers/serve_raw_client.h"
#include "falsifiers/serve_test_util.h"

namespace popper::testing {

// Growth allowed in the server's RSS across a scenario after warm-up: allocator caches and
// thread stacks settle within this; a leak of one request's buffers per request (thousands of
// requests) would pass it many times over. The same bound as serve_load_test.
constexpr long kMaxRssGrowthKib = 32 * 1024;
// How long the server may take to settle after a scenario (a handler frees its slot just after
// its client read the last byte; a dropped socket closes within a poll slice).
constexpr std::chrono::milliseconds kSettle{5000};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Statuses and latencies of a scenario's requests; thread-safe.
class StatusTally {
 public:
  void add(int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++codes_[status];
    latencies_.push_back(seconds);
  }
  int count(int status) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = codes_.find(status);
    return it == codes_.end() ? 0 : it->second;
  }
  int total() const {
    std::lock_guard<std::mutex> lock(mu_);
    return int(latencies_.size());
  }
  // Requests answered 5xx or not at all (-1): what no scenario may produce.
  int failures() const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [status, k] : codes_) n += (status < 0 || status >= 500) && status != 503 ? k : 0;
    return n;
  }
  double percentile(double p) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (latencies_.empty()) return 0;
    std::vector<double> v = latencies_;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
  }
  // "n=20 codes{200:20} p50=12.3ms p99=40.1ms"
  std::string summary() const {
    std::string s = "n=" + std::to_string(total()) + " codes{";
    {
      std::lock_guard<std::mutex> lock(mu_);
      bool first = true;
      for (const auto& [status, k] : codes_) {
        s += (first ? "" : ",") + std::to_string(status) + ":" + std::to_string(k);
        first = false;
      }
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "} p50=%.1fms p99=%.1fms", percentile(0.5) * 1e3, percentile(0.99) * 1e3);
    return s + buf;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, int> codes_;
  std::vector<double> latencies_;
};

// Open file descriptors of the server process (sockets included).
inline int fd_count(ServerProcess& server) {
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(server.process().pid()) + "/fd", ec), end;
       !ec && it != end; it.increment(ec))
    ++n;
  return n;
}

// Waits (bounded by kSettle) until the server holds at most `target` descriptors; the count.
inline int await_fd_count(ServerProcess& server, int target) {
  const auto end = std::chrono::steady_clock::now() + kSettle;
  int n = fd_count(server);
  while (n > target && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    n = fd_count(server);
  }
  return n;
}

// Waits (bounded by kSettle) until no slot is busy and no request admitted; the last metrics.
inline std::map<std::string, double> await_idle(ServerProcess& server) {
  auto c = server.client(10);
  const auto end = std::chrono::steady_clock::now() + kSettle;
  auto m = get_metrics(*c);
  while ((m["popper_slots_busy"] != 0 || m["popper_requests_admitted"] != 0) &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = get_metrics(*c);
  }
  return m;
}

// The end of every scenario: alive, idle, no 5xx counted by the server itself, and a chat on
// every slot at once is answered 200 (a leaked slot would make one of them wait or 503).
inline void expect_healthy_and_idle(ServerProcess& server) {
  ASSERT_TRUE(server.process().running()) << server.log();
  auto m = await_idle(server);
  EXPECT_EQ(m["popper_slots_busy"], 0) << "a slot leaked";
  EXPECT_EQ(m["popper_requests_admitted"], 0) << "an admission place leaked";
  for (const auto& [key, v] : m) {
    if (key.rfind("popper_requests_total{", 0) == 0 && key.find("status=\"5") != std::string::npos &&
        key.find("status=\"503\"") == std::string::npos)
      ADD_FAILURE() << key << " = " << v;
  }
  const int slots = int(m["popper_slots_total"]);
  std::vector<int> statuses(size_t(std::max(slots, 1)), -1);
  std::vector<std::thread> ts;
  for (int i = 0; i < slots; ++i) {
    ts.emplace_back([&, i] {
      auto c = server.client();
      auto r = post_json(*c, "/v1/chat/completions", chat_body("after " + std::to_string(i), 2));
      statuses[size_t(i)] = r ? r->status : -1;
    });
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < slots; ++i) EXPECT_EQ(statuses[size_t(i)], 200) << "slot request " << i;
}

}  // namespace popper::testing
