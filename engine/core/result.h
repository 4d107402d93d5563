// Result<T>: a value or an error message, the way every layer reports bad input.
//
// Bad input (files, YAML, requests, flags) is expected and comes back as an Error whose message
// says what was expected, what was found and where. Bugs are not input: they abort through
// POPPER_CHECK with file:line. No exception crosses a layer.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace popper {

struct Error {
  std::string message;
};

// Concatenates any streamable arguments: str_cat("tensor ", name, " at offset ", off).
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <class... Args>
Error make_error(const Args&... args) {
  return Error{str_cat(args...)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const { return std::get<1>(state_); }
  const std::string& message() const { return error().message; }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}
  static Status success() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }
  const std::string& message() const { return error_->message; }

 private:
  std::optional<Error> error_;
};

[[noreturn]] inline void check_failed(const char* file, int line, const char* expr, const std::string& why) {
  std::fprintf(stderr, "popper: internal check failed at %s:%d: %s %s\n", file, line, expr, why.c_str());
  std::abort();
}

}  // namespace popper

// Always-on invariant check for bugs (not input): aborts with file:line.
#define POPPER_CHECK(cond, ...)                                                             \
  do {                                                                                      \
    if (!(cond)) ::popper::check_failed(__FILE__, __LINE__, #cond, ::popper::str_cat("" __VA_ARGS__)); \
  } while (0)

// Debug-only check for hot loops.
#ifdef NDEBUG
#define POPPER_DCHECK(cond, ...) ((void)0)
#else
#define POPPER_DCHECK(cond, ...) POPPER_CHECK(cond, __VA_ARGS__)
#endif

// Propagates an error from an expression returning Status or Result<T>.
#define POPPER_RETURN_IF_ERROR(expr)              \
  do {                                            \
    auto popper_status_ = (expr);                 \
    if (!popper_status_.ok()) return popper_status_.error(); \
  } while (0)
