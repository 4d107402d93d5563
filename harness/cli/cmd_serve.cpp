// `popper serve`: the OpenAI-compatible HTTP server (engine/serve/server.h) on a GGUF model.
//
//   popper serve --model m.gguf [--host 127.0.0.1] [--port 8080] [--threads N] [--parallel N] [--ctx N]
//                [--backend cpu|cuda|auto] [--max-body-mib N] [--header-timeout S] [--body-timeout S]
//                [--idle-timeout S] [--write-timeout S] [--max-header-kib N]
//   curl -s localhost:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"hi"}]}'
#include <chrono>
#include <cstdio>
#include <string>

#include "engine/serve/engine.h"
#include "engine/serve/server.h"
#include "harness/cli/commands.h"

namespace popper::cli {
namespace {

struct ServeFlags {
  serve::EngineOptions engine;
  serve::ServerOptions server;
  std::string kv_type = "f16";
  std::string backend = "cpu";
  size_t max_body_mib = 8;
  size_t max_header_kib = 64;
  // Seconds; see engine/serve/guarded_server.h for what each bounds.
  double header_timeout_s = 10, body_timeout_s = 30, idle_timeout_s = 5, write_timeout_s = 10;
};

constexpr double kMaxTimeoutSeconds = 3600;  // past an hour a "time-out" no longer protects anything

// Seconds -> the limit, or false after saying what was wrong.
bool set_timeout(const char* flag, double s, std::chrono::milliseconds* out) {
  if (!(s >= 0.001 && s <= kMaxTimeoutSeconds)) {
    std::fprintf(stderr, "popper serve: %s: want 0.001..%g seconds, got %g\n", flag, kMaxTimeoutSeconds, s);
    return false;
  }
  *out = std::chrono::milliseconds(int64_t(s * 1e3 + 0.5));
  return true;
}

int run_serve(ServeFlags& f) {
  // Before the engine starts its compute threads, so that they inherit the mask.
  serve::block_shutdown_signals();
  auto kv = parse_kv_type(f.kv_type);
  if (!kv.ok()) {
    std::fprintf(stderr, "popper serve: --kv-type: %s\n", kv.message().c_str());
    return 2;
  }
  f.engine.kv_type = kv.value();
  auto backend = parse_backend_kind(f.backend);
  if (!backend.ok()) {
    std::fprintf(stderr, "popper serve: %s\n", backend.message().c_str());
    return 2;
  }
  f.engine.backend = backend.value();
  if (f.max_body_mib < 1 || f.max_body_mib > 1024) {
    std::fprintf(stderr, "popper serve: --max-body-mib: want 1..1024, got %zu\n", f.max_body_mib);
    return 2;
  }
  f.server.limits.max_body_bytes = f.max_body_mib << 20;
  if (f.max_header_kib < 1 || f.max_header_kib > 1024) {
    std::fprintf(stderr, "popper serve: --max-header-kib: want 1..1024, got %zu\n", f.max_header_kib);
    return 2;
  }
  f.server.limits.max_head_bytes = f.max_header_kib << 10;
  serve::ConnectionLimits& l = f.server.limits;
  if (!set_timeout("--header-timeout", f.header_timeout_s, &l.head_timeout) ||
      !set_timeout("--body-timeout", f.body_timeout_s, &l.body_timeout) ||
      !set_timeout("--idle-timeout", f.idle_timeout_s, &l.idle_timeout) ||
      !set_timeout("--write-timeout", f.write_timeout_s, &l.write_timeout)) {
    return 2;
  }
  if (f.server.port < 0 || f.server.port > 65535) {
    std::fprintf(stderr, "popper serve: --port: want 0..65535, got %d\n", f.server.port);
    return 2;
  }
  auto engine = serve::Engine::load(f.engine);
  if (!engine.ok()) {
    std::fprintf(stderr, "popper serve: %s\n", engine.message().c_str());
    return 2;
  }
  return serve::serve_until_signal(*engine.value(), f.server);
}

void register_serve(CLI::App& app) {
  static ServeFlags f;
  CLI::App* cmd = add_command(app, "serve", "Serve a GGUF model over an OpenAI-compatible HTTP API",
                              [] { return run_serve(f); });
  cmd->add_option("--model", f.engine.model_path, "GGUF model file")->required();
  cmd->add_option("--host", f.server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f.server.port, "Port (0: any free port; see --port-file)")->capture_default_str();
  cmd->add_option("--port-file", f.server.port_file, "Write the bound port to this file once listening");
  cmd->add_option("--threads", f.engine.threads, "Compute threads in all, split across slots (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--parallel", f.engine.parallel,
                  "Slots: requests generated at once, each with its own KV cache")
      ->capture_default_str();
  cmd->add_option("--queue", f.engine.queue,
                  "Requests that may wait for a slot; past that, 503 with Retry-After")
      ->capture_default_str();
  cmd->add_option("--ctx", f.engine.ctx, "KV positions per slot (0: min(4096, the model's context))")
      ->capture_default_str();
  cmd->add_option("--kv-type", f.kv_type, "KV cache storage: f16 or f32")->capture_default_str();
  cmd->add_option("--backend", f.backend,
                  "Compute backend: cpu (one per slot), cuda (one GPU backend shared by all slots), or auto "
                  "(cuda when compiled in and a device answers, else cpu)")
      ->capture_default_str();
  cmd->add_option("--max-body-mib", f.max_body_mib, "Request body limit in MiB (413 past it)")
      ->capture_default_str();
  cmd->add_option("--max-header-kib", f.max_header_kib, "Request line + headers limit in KiB (431 past it)")
      ->capture_default_str();
  cmd->add_option("--header-timeout", f.header_timeout_s,
                  "Seconds a request's line and headers may take to arrive (408 past it)")
      ->capture_default_str();
  cmd->add_option("--body-timeout", f.body_timeout_s,
                  "Seconds a request body may take to arrive (408 past it)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", f.idle_timeout_s,
                  "Seconds an idle keep-alive connection is kept, and the longest pause within a request")
      ->capture_default_str();
  cmd->add_option("--write-timeout", f.write_timeout_s,
                  "Seconds a client may take to accept response bytes before it counts as gone")
      ->capture_default_str();
  cmd->add_flag(
      "--force-dense-ffn", f.engine.force_dense_ffn,
      "Negative control only: run the dense FFN even on an MoE model, so the dense-path guard fires");
}

}  // namespace
POPPER_REGISTER_COMMAND(45, register_serve);
}  // namespace popper::cli
