// An httplib::Server whose connections cannot be held or grown without bound.
//
// Why: cpp-httplib 0.11.4 (Debian's) reads a request with no bound of its own. The request line
// and each header line grow until a newline, headers have no count limit, a Content-Length over
// the payload limit is read (and thrown away) whole before the 413, a chunked body is never
// capped, a POST without a length is read until EOF, and a client that sends one byte per read
// timeout holds a worker thread forever. GuardedServer replaces httplib's per-connection loop
// (process_and_close_socket, meant to be overridden: SSLServer does) with one whose Stream
// enforces, per request:
//   head   request line + headers within head_timeout and max_head_bytes    else 408 / 431
//   body   Content-Length over max_body_bytes: 413 before a body byte is read; a chunked body
//          cut at max_body_bytes (+ framing): 413; no length on a POST: 411; the body within
//          body_timeout: else 408
//   idle   a keep-alive connection waits idle_timeout for its next request, and any read
//          stalls at most idle_timeout; at most max_requests per connection
//   write  each write waits at most write_timeout for the client to take bytes
// Every refusal closes the connection (after a short bounded drain, so the client reads the
// answer instead of a reset). The refusal's body comes from ErrorBody, the API's error format.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace popper::serve {

struct ConnectionLimits {
  std::chrono::milliseconds head_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{5'000};
  std::chrono::milliseconds write_timeout{10'000};
  size_t max_head_bytes = 64u << 10;  // llama.cpp's server and nginx both default to this order
  size_t max_body_bytes = 8u << 20;
  size_t max_requests = 100;  // per keep-alive connection
  // Connections the kernel queues for accept(2). httplib listens with a backlog of 5: a burst of
  // clients overflows it, and each SYN dropped costs that client a 1 s, 3 s, 7 s... retry.
  int listen_backlog = 1024;
};

// The response body for a refusal: (HTTP status, message, OpenAI error code or "") -> JSON text.
using ErrorBody = std::function<std::string(int status, const std::string& message, const std::string& code)>;

class GuardedServer : public httplib::Server {
 public:
  // on_refused: called once per refusal answered outside httplib's response path (the request
  // line itself broke a limit), so that metrics count it; may be empty.
  GuardedServer(const ConnectionLimits& limits, ErrorBody error_body,
                std::function<void(int status)> on_refused);

  const ConnectionLimits& limits() const { return limits_; }

  // After bind_to_port / bind_to_any_port: listen(2) again with limits().listen_backlog (Linux
  // updates the backlog of a listening socket). False, with errno set, when that fails.
  bool widen_backlog();

 private:
  bool process_and_close_socket(socket_t sock) override;

  ConnectionLimits limits_;
  ErrorBody error_body_;
  std::function<void(int)> on_refused_;
};

}  // namespace popper::serve
