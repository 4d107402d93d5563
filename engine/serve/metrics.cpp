#include "engine/serve/metrics.h"

#include <sstream>

#include "engine/serve/engine.h"

namespace popper::serve {

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

std::string Metrics::render(const Engine& engine) const {
  std::ostringstream o;
  const FfnDispatchCounters& ffn = engine.model().counters();
  o << "# HELP popper_ffn_dispatch_total FFN calls per path (one per layer per forward pass).\n"
    << "# TYPE popper_ffn_dispatch_total counter\n"
    << "popper_ffn_dispatch_total{path=\"dense\"} " << ffn.dense.load() << "\n"
    << "popper_ffn_dispatch_total{path=\"moe\"} " << ffn.moe.load() << "\n";
  o << "# HELP popper_model_info The model's arch and the FFN path resolved for it at load.\n"
    << "# TYPE popper_model_info gauge\n"
    << "popper_model_info{arch=\"" << engine.arch().name << "\",ffn=\""
    << (engine.arch().ffn == FfnKind::kMoe ? "moe" : "dense") << "\"} 1\n";
  o << "# HELP popper_backend_info The compute backend (auto resolved) and whether the slots share it.\n"
    << "# TYPE popper_backend_info gauge\n"
    << "popper_backend_info{backend=\"" << engine.backend_name() << "\",shared=\""
    << (engine.backend_shared() ? "true" : "false") << "\"} 1\n";
  o << "# HELP popper_requests_total Finished HTTP requests by endpoint and status.\n"
    << "# TYPE popper_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : requests_) {
      o << "popper_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n
        << "\n";
    }
  }
  o << "# HELP popper_prompt_tokens_total Prompt tokens processed.\n"
    << "# TYPE popper_prompt_tokens_total counter\n"
    << "popper_prompt_tokens_total " << prompt_tokens_.load() << "\n"
    << "# HELP popper_completion_tokens_total Completion tokens generated.\n"
    << "# TYPE popper_completion_tokens_total counter\n"
    << "popper_completion_tokens_total " << completion_tokens_.load() << "\n"
    << "# HELP popper_requests_rejected_total Requests refused with 503 because the queue was full.\n"
    << "# TYPE popper_requests_rejected_total counter\n"
    << "popper_requests_rejected_total " << rejected_.load() << "\n"
    << "# HELP popper_requests_cancelled_total Generations stopped because the client went away.\n"
    << "# TYPE popper_requests_cancelled_total counter\n"
    << "popper_requests_cancelled_total " << cancelled_.load() << "\n"
    << "# HELP popper_slots_busy Slots generating now.\n"
    << "# TYPE popper_slots_busy gauge\n"
    << "popper_slots_busy " << engine.busy_slots() << "\n"
    << "# HELP popper_slots_total Slots (--parallel).\n"
    << "# TYPE popper_slots_total gauge\n"
    << "popper_slots_total " << engine.parallel() << "\n"
    << "# HELP popper_requests_admitted Requests generating or waiting for a slot.\n"
    << "# TYPE popper_requests_admitted gauge\n"
    << "popper_requests_admitted " << engine.admitted() << "\n";
  return o.str();
}

}  // namespace popper::serve
