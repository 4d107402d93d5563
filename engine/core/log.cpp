#include "engine/core/log.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "engine/core/faults.h"

namespace popper {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("POPPER_LOG");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  if (std::strcmp(v, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  return LogLevel::kInfo;
}

std::atomic<int>& level_store() {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_store().load(std::memory_order_relaxed)); }
void set_log_level(LogLevel level) { level_store().store(static_cast<int>(level)); }

void log_line(LogLevel level, const std::string& message) {
  static std::mutex mu;
  static const char* kTags[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> lock(mu);
  // While a fault is on (engine/core/faults.h) every line says so: its output is a negative
  // control, not the engine's behaviour.
  const std::string& faults = active_faults_text();
  if (faults.empty())
    std::fprintf(stderr, "popper %s: %s\n", kTags[static_cast<int>(level)], message.c_str());
  else
    std::fprintf(stderr, "popper %s [FAULTS %s]: %s\n", kTags[static_cast<int>(level)], faults.c_str(),
                 message.c_str());
  std::fflush(stderr);
}

}  // namespace popper
