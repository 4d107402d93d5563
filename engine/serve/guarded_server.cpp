#include "engine/serve/guarded_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>

#include "engine/core/faults.h"
#include "engine/core/log.h"

namespace popper::serve {
namespace {

using Clock = std::chrono::steady_clock;

// A chunked body's framing (size lines, CRLFs) is read through the same cap as its data; this
// much is allowed on top of max_body_bytes for it.
constexpr size_t kChunkFramingSlack = 64u << 10;
// A refused connection is drained this long / this much before close(2): closing with unread
// bytes makes the kernel send a reset, and a client still sending its body would then lose the
// refusal it has not read yet. Bounded, so that draining is no new way to hold a worker.
constexpr auto kLingerTime = std::chrono::milliseconds(1000);
constexpr size_t kLingerBytes = 4u << 20;
// Waits for a keep-alive connection's next request poll in slices this long, so that a stopping
// server is not held up by idle connections (httplib's own loop polls every 10 ms).
constexpr int kIdleSliceMs = 50;

int ceil_ms(Clock::duration d) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return int(std::clamp<int64_t>(ms, 1, 1 << 30));
}

double seconds(std::chrono::milliseconds d) { return double(d.count()) / 1e3; }

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", seconds(d));
  return buf;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

// Methods httplib reads a body for (its detail::expect_content); a length on any other request
// is left unread, and those bytes must not be parsed as the next request.
bool reads_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "PRI" || method == "DELETE";
}
// Of those, the ones httplib reads until EOF when no length is given (DELETE it skips).
bool needs_length(const std::string& method) { return reads_body(method) && method != "DELETE"; }

// A broken limit: the status and message the client gets.
struct Refusal {
  int status = 0;  // 0: none
  std::string message;
  std::string code;
};

enum class Phase { kHead, kBody };

// One connection's state, shared by its Stream and the handlers httplib calls for it, all on
// the worker thread that runs the connection (t_conn).
struct Connection {
  explicit Connection(const ConnectionLimits& l) : limits(l) {}
  const ConnectionLimits& limits;
  Phase phase = Phase::kHead;
  Clock::time_point deadline;
  size_t phase_bytes = 0;  // read in this phase; <= phase_cap
  size_t phase_cap = 0;
  Refusal refusal;
  bool must_close = false;

  void begin(Phase p) {
    phase = p;
    deadline = Clock::now() + (p == Phase::kHead ? limits.head_timeout : limits.body_timeout);
    phase_bytes = 0;
    phase_cap = p == Phase::kHead ? limits.max_head_bytes : limits.max_body_bytes + kChunkFramingSlack;
    // Fault serve_unbounded_reads: httplib's own bounds, a stall limit per read and nothing more.
    if (fault_on(Fault::kServeUnboundedReads)) {
      deadline = Clock::time_point::max();
      phase_cap = SIZE_MAX;
    }
  }
  void refuse(int status, std::string message, std::string code = "") {
    if (refusal.status == 0) refusal = {status, std::move(message), std::move(code)};
    must_close = true;
  }
  void refuse_timeout() {
    refuse(408,
           phase == Phase::kHead
               ? "request line and headers not received within " + seconds_text(limits.head_timeout) +
                     " (--header-timeout), or no byte for " + seconds_text(limits.idle_timeout)
               : "request body not received within " + seconds_text(limits.body_timeout) +
                     " (--body-timeout), or no byte for " + seconds_text(limits.idle_timeout),
           "request_timeout");
  }
  void refuse_too_large() {
    if (phase == Phase::kHead) {
      refuse(431, "request line and headers larger than " + std::to_string(limits.max_head_bytes) + " bytes",
             "headers_too_large");
    } else {
      refuse(413, "request body larger than the limit of " + std::to_string(limits.max_body_bytes) + " bytes",
             "payload_too_large");
    }
  }
};

thread_local Connection* t_conn = nullptr;

void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(serv);
  }
}

bool poll_fd(int fd, short events, int timeout_ms) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && (p.revents & (POLLERR | POLLNVAL)) == 0;
  }
}

// The connection's Stream: httplib's SocketStream with the phase deadline and byte cap of
// Connection on every read. One per connection, so bytes read ahead (a pipelined request) are
// kept for the next request.
class GuardedStream final : public httplib::Stream {
 public:
  GuardedStream(int fd, Connection& conn) : fd_(fd), conn_(conn) {}

  bool is_readable() const override {
    return off_ < len_ || poll_fd(fd_, POLLIN, ceil_ms(conn_.limits.idle_timeout));
  }
  // As httplib's: writable within the write timeout, and the peer has not closed (a client that
  // went away mid-stream ends the generation).
  bool is_writable() const override {
    if (!poll_fd(fd_, POLLOUT, ceil_ms(conn_.limits.write_timeout))) return false;
    if (!poll_fd(fd_, POLLIN, 0)) return true;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (conn_.refusal.status != 0) return -1;
    if (off_ == len_) {
      const ssize_t n = fill();
      if (n <= 0) return n;
    }
    size_t n = std::min(size, len_ - off_);
    if (conn_.phase_bytes + n > conn_.phase_cap) {
      n = conn_.phase_cap - conn_.phase_bytes;
      if (n == 0) {
        conn_.refuse_too_large();
        return -1;
      }
    }
    std::memcpy(ptr, buf_ + off_, n);
    off_ += n;
    conn_.phase_bytes += n;
    return ssize_t(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!poll_fd(fd_, POLLOUT, ceil_ms(conn_.limits.write_timeout))) return -1;
    for (;;) {
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) written_ += uint64_t(n);
      return n;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, false, ip, port); }
  socket_t socket() const override { return fd_; }

  uint64_t bytes_written() const { return written_; }

  // Waits up to `timeout` for the next request's first byte (or the peer's close); false on
  // timeout, on a socket error, or once the server stops (listener closed).
  bool wait_for_request(std::chrono::milliseconds timeout, const std::atomic<socket_t>& listener) {
    if (off_ < len_) return true;
    const auto end = Clock::now() + timeout;
    while (listener != INVALID_SOCKET) {
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, kIdleSliceMs);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
      if (Clock::now() >= end) return false;
    }
    return false;
  }

 private:
  // Refills the buffer, waiting no longer than the phase deadline nor idle_timeout for a byte.
  // Returns the bytes read, 0 at EOF, -1 on an error or a timeout (then the refusal is set).
  ssize_t fill() {
    for (;;) {
      const auto now = Clock::now();
      if (now >= conn_.deadline) {
        conn_.refuse_timeout();
        return -1;
      }
      const auto wait = std::min<Clock::duration>(conn_.deadline - now, conn_.limits.idle_timeout);
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, ceil_ms(wait));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return -1;
      if (r == 0) {
        conn_.refuse_timeout();
        return -1;
      }
      const ssize_t n = ::recv(fd_, buf_, sizeof buf_, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n;
      off_ = 0;
      len_ = size_t(n);
      // A client that sends its head and body in two writes without TCP_NODELAY (httplib's own
      // client) holds the body back until the head is ACKed; Linux delays that ACK up to 40 ms.
      // TCP_QUICKACK sends the pending ACK now (the kernel clears it again, hence every read).
      const int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      return n;
    }
  }

  int fd_;
  Connection& conn_;
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
  uint64_t written_ = 0;
};

// A refusal httplib had no response for (the request line itself broke a limit).
void write_refusal(GuardedStream& strm, const Refusal& r, const ErrorBody& error_body) {
  const std::string body = error_body(r.status, r.message, r.code);
  const std::string text = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
                           "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = strm.write(text.data() + off, text.size() - off);
    if (n <= 0) return;
    off += size_t(n);
  }
}

void linger_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto end = Clock::now() + kLingerTime;
  size_t drained = 0;
  char buf[4096];
  while (drained < kLingerBytes) {
    const auto now = Clock::now();
    if (now >= end || !poll_fd(fd, POLLIN, ceil_ms(end - now))) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    drained += size_t(n);
  }
  ::close(fd);
}

// Content-Length as RFC 9110 writes it: digits only (no sign, no spaces, no overflow).
bool parse_length(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + uint64_t(ch - '0');
  }
  *out = v;
  return true;
}

}  // namespace

GuardedServer::GuardedServer(const ConnectionLimits& limits, ErrorBody error_body,
                             std::function<void(int status)> on_refused)
    : limits_(limits), error_body_(std::move(error_body)), on_refused_(std::move(on_refused)) {
  set_payload_max_length(limits_.max_body_bytes);
  // What httplib puts in its Keep-Alive header; the loop below enforces them.
  set_keep_alive_max_count(limits_.max_requests);
  set_keep_alive_timeout(std::max<time_t>(1, time_t(limits_.idle_timeout.count() / 1000)));

  // Runs once the headers are read and before any body byte is: the body's framing is judged here.
  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    Connection* c = t_conn;
    if (c == nullptr) return HandlerResponse::Unhandled;
    c->begin(Phase::kBody);
    if (fault_on(Fault::kServeUnboundedReads)) return HandlerResponse::Unhandled;
    auto refuse = [&](int status, std::string message, const char* code = "") {
      c->refuse(status, std::move(message), code);
      res.status = status;
      return HandlerResponse::Handled;
    };
    const size_t n_length = req.get_header_value_count("Content-Length");
    if (req.has_header("Transfer-Encoding")) {
      // Both framings at once is how requests are smuggled past proxies (RFC 9112 6.1).
      if (n_length > 0) return refuse(400, "both Content-Length and Transfer-Encoding given");
      const std::string te = req.get_header_value("Transfer-Encoding");
      if (req.get_header_value_count("Transfer-Encoding") > 1 || strcasecmp(te.c_str(), "chunked") != 0) {
        return refuse(400, "Transfer-Encoding: want chunked, got \"" + te + "\"");
      }
      if (!reads_body(req.method)) c->must_close = true;
      return HandlerResponse::Unhandled;
    }
    if (n_length > 1) return refuse(400, "Content-Length given " + std::to_string(n_length) + " times");
    if (n_length == 1) {
      const std::string text = req.get_header_value("Content-Length");
      uint64_t length = 0;
      if (!parse_length(text, &length))
        return refuse(400, "Content-Length: want a byte count, got \"" + text + "\"");
      if (length > limits_.max_body_bytes) {
        return refuse(413,
                      "request body of " + text + " bytes is larger than the limit of " +
                          std::to_string(limits_.max_body_bytes) + " bytes (--max-body-mib)",
                      "payload_too_large");
      }
      if (length > 0 && !reads_body(req.method)) c->must_close = true;
      return HandlerResponse::Unhandled;
    }
    if (needs_length(req.method)) {
      return refuse(411, req.method + " needs a Content-Length or Transfer-Encoding: chunked",
                    "length_required");
    }
    return HandlerResponse::Unhandled;
  });

  // Every error status gets the API's error body; a refusal's status replaces what httplib chose
  // (its 400 for a read that failed on a limit).
  set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    Connection* c = t_conn;
    if (c != nullptr && c->refusal.status != 0) {
      res.status = c->refusal.status;
      res.body = error_body_(c->refusal.status, c->refusal.message, c->refusal.code);
      res.set_header("Content-Type", "application/json");
    }
    if (c != nullptr && c->must_close) res.set_header("Connection", "close");
    if (!res.body.empty()) return;
    std::string message = "bad request (HTTP " + std::to_string(res.status) + ")", code;
    if (res.status == 404) {
      message = "unknown route: " + req.method + " " + req.path;
      code = "not_found";
    } else if (res.status == 413) {
      message = "request body larger than the limit of " + std::to_string(limits_.max_body_bytes) + " bytes";
      code = "payload_too_large";
    } else if (res.status >= 500) {
      message = "internal error (HTTP " + std::to_string(res.status) + ")";
    }
    res.set_content(error_body_(res.status, message, code), "application/json");
  });

  // A handler that throws (out of memory, a bug) is a reported internal error, never a crash.
  set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_error(req.method, " ", req.path, ": internal error: ", what);
    res.status = 500;
    res.set_content(error_body_(500, "internal error: " + what, ""), "application/json");
  });
}

bool GuardedServer::widen_backlog() { return ::listen(svr_sock_, limits_.listen_backlog) == 0; }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  // httplib writes a response's head and body with two send(2)s: with Nagle's algorithm the body
  // then waits for the client's delayed ACK of the head, 40 ms on Linux, on every response.
  const int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Connection conn(limits_);
  GuardedStream strm(sock, conn);
  t_conn = &conn;
  for (size_t n = 0; n < limits_.max_requests; ++n) {
    if (!strm.wait_for_request(n == 0 ? limits_.head_timeout : limits_.idle_timeout, svr_sock_)) break;
    conn.begin(Phase::kHead);
    const uint64_t written = strm.bytes_written();
    bool closed = false;
    const bool ok = process_request(strm, n + 1 == limits_.max_requests, closed, nullptr);
    if (conn.refusal.status != 0) {
      log_info("refused ", conn.refusal.status, ": ", conn.refusal.message);
      if (strm.bytes_written() == written) {
        write_refusal(strm, conn.refusal, error_body_);
        if (on_refused_) on_refused_(conn.refusal.status);
      }
    }
    if (!ok || closed || conn.must_close) break;
  }
  t_conn = nullptr;
  if (conn.must_close) {
    linger_close(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return true;
}

}  // namespace popper::serve
