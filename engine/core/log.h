// Leveled logging to stderr. The level comes from POPPER_LOG (error|warn|info|debug), default info.
#pragma once

#include "engine/core/result.h"

namespace popper {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string& message);

template <class... Args>
void log_info(const Args&... args) {
  if (log_level() >= LogLevel::kInfo) log_line(LogLevel::kInfo, str_cat(args...));
}
template <class... Args>
void log_warn(const Args&... args) {
  if (log_level() >= LogLevel::kWarn) log_line(LogLevel::kWarn, str_cat(args...));
}
template <class... Args>
void log_error(const Args&... args) {
  log_line(LogLevel::kError, str_cat(args...));
}
template <class... Args>
void log_debug(const Args&... args) {
  if (log_level() >= LogLevel::kDebug) log_line(LogLevel::kDebug, str_cat(args...));
}

}  // namespace popper
