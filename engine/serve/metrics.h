// Server counters, rendered as Prometheus text (exposition format 0.0.4) at GET /metrics.
//
//   popper_ffn_dispatch_total{path="dense"|"moe"}   FFN calls per path (per layer per forward),
//                                                   read from the model's FfnDispatchCounters
//   popper_requests_total{endpoint, status}         finished HTTP requests
//   popper_prompt_tokens_total, popper_completion_tokens_total
//   popper_requests_rejected_total                  503s (queue full)
//   popper_requests_cancelled_total                 clients gone mid-stream
//   popper_slots_busy, popper_requests_admitted     gauges
//   popper_model_info{arch, ffn}                    1, the dispatch resolved at load
//   popper_backend_info{backend, shared}            1, the backend the slots run on
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace popper::serve {

class Engine;

class Metrics {
 public:
  void count_request(const std::string& endpoint, int status);
  void add_tokens(int64_t prompt, int64_t completion) {
    prompt_tokens_ += uint64_t(prompt);
    completion_tokens_ += uint64_t(completion);
  }
  void count_rejected() { ++rejected_; }
  void count_cancelled() { ++cancelled_; }
  std::string render(const Engine& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // guarded by mu_
  std::atomic<uint64_t> prompt_tokens_{0}, completion_tokens_{0}, rejected_{0}, cancelled_{0};
};

}  // namespace popper::serve
