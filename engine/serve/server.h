// The OpenAI-compatible HTTP server (cpp-httplib):
//
//   POST /v1/chat/completions   chat messages -> assistant message; stream: true for SSE
//   POST /v1/completions        raw prompt -> text; stream: true for SSE
//   GET  /v1/models             the one loaded model
//   GET  /health                {"status": "ok", ...}
//   GET  /metrics               Prometheus text (metrics.h)
//
// Errors are OpenAI error objects: 400 bad JSON / field (naming it) / prompt longer than the
// context (with both numbers) / bad body framing, 404 unknown route, 408 request not received
// in time, 411 POST without a length, 413 body over --max-body-mib (before it is read),
// 431 headers too large, 503 with Retry-After when --parallel slots and the --queue are full,
// 500 when the forward pass fails. Connection limits: guarded_server.h.
// SSE: `data: {chunk}\n\n` per event, a last chunk with finish_reason, then `data: [DONE]\n\n`.
// A client that goes away mid-stream cancels its generation and frees the slot.
#pragma once

#include <cstdint>
#include <string>

#include "engine/serve/engine.h"
#include "engine/serve/guarded_server.h"

namespace popper::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (see port_file)
  std::string port_file;  // when set, the bound port is written here (atomically) once listening
  ConnectionLimits limits;  // time-outs and byte caps per connection and request
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later, so that
// serve_until_signal receives them. Call it before anything starts threads (the engine's
// compute pools): a thread that leaves them unblocked would take the default action, death.
void block_shutdown_signals();

// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish and
// returns 0. Returns 2 when the address cannot be bound or the port file cannot be written.
int serve_until_signal(Engine& engine, const ServerOptions& options);

}  // namespace popper::serve
