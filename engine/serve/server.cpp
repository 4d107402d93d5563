#include "engine/serve/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>

#include "engine/core/atomic_file.h"
#include "engine/core/faults.h"
#include "engine/core/log.h"
#include "engine/model/ffn_guard.h"
#include "engine/serve/api.h"
#include "engine/serve/guarded_server.h"
#include "engine/serve/metrics.h"
#include "engine/serve/text_util.h"

namespace popper::serve {
namespace {

constexpr int kRetryAfterSeconds = 1;  // a slot frees within one short completion on any model we serve
constexpr int kExtraHttpThreads = 8;   // /health, /metrics and idle keep-alive connections

// JSON text for the wire: model output may hold bytes that are not UTF-8.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.to_json()), "application/json");
}

// The role of a chat answer. Fault serve_wrong_role: "user".
const char* answer_role() { return fault_on(Fault::kServeWrongRole) ? "user" : "assistant"; }

std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"}) {
    if (path == known) return known;
  }
  return "other";
}

class HttpServer {
 public:
  HttpServer(Engine& engine, const ServerOptions& options)
      : engine_(engine),
        options_(options),
        svr_(
            options.limits,
            [](int status, const std::string& message, const std::string& code) {
              ApiError e;
              e.status = status;
              e.message = message;
              e.code = code;
              if (status >= 500) e.type = "server_error";
              return dump(e.to_json());
            },
            [this](int status) { metrics_.count_request("other", status); }) {}

  int run();
  void stop() { svr_.stop(); }

 private:
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  json usage_json(const RunOutcome& r) const {
    return {{"prompt_tokens", r.n_prompt},
            {"completion_tokens", r.n_generated},
            {"total_tokens", r.n_prompt + r.n_generated}};
  }
  // llama.cpp's server extension: server-side timings.
  json timings_json(const RunOutcome& r) const {
    const double decode_steps = double(std::max<int64_t>(0, r.n_generated - 1));
    return {{"queue_ms", r.queue_seconds * 1e3},
            {"prompt_n", r.n_prompt},
            {"prompt_ms", r.prefill_seconds * 1e3},
            {"predicted_n", r.n_generated},
            {"predicted_ms", r.decode_seconds * 1e3},
            {"predicted_per_second", r.decode_seconds > 0 ? decode_steps / r.decode_seconds : 0.0}};
  }
  std::string next_id(bool chat) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s-%016llx", chat ? "chatcmpl" : "cmpl",
                  static_cast<unsigned long long>(id_base_ ^ (++id_counter_ * 0x9E3779B97F4A7C15ull)));
    return buf;
  }

  Engine& engine_;
  ServerOptions options_;
  Metrics metrics_;  // before svr_, whose refusal hook counts into it
  GuardedServer svr_;
  const uint64_t id_base_ = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  std::atomic<uint64_t> id_counter_{0};
  std::atomic<uint64_t> auto_seed_{0x5eed};
};

void HttpServer::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  CompletionRequest cr;
  if (auto e = parse_completion_request(req.body, chat, &cr)) return send_error(res, *e);
  const std::string param = chat ? "messages" : "prompt";
  std::string prompt_text = cr.prompt;
  if (chat) {
    auto rendered = engine_.chat_template().render(cr.messages, cr.chat_options);
    if (!rendered.ok()) {
      ApiError e;
      e.message = "messages: " + rendered.message();
      e.param = "messages";
      return send_error(res, e);
    }
    prompt_text = rendered.value();
  }
  const std::vector<int32_t> prompt = engine_.tokenizer().encode(prompt_text, /*parse_special=*/true);
  const int64_t n_prompt = int64_t(prompt.size());
  if (n_prompt >= engine_.n_ctx()) {
    ApiError e;
    e.message = param + ": the prompt is " + std::to_string(n_prompt) + " tokens but the context holds " +
                std::to_string(engine_.n_ctx()) + " positions per slot (--ctx " +
                std::to_string(engine_.n_ctx()) + "), and at least one is needed for the completion";
    e.param = param;
    e.code = "context_length_exceeded";
    return send_error(res, e);
  }
  if (n_prompt == 0) {
    ApiError e;
    e.message = param + ": the prompt has no tokens";
    e.param = param;
    return send_error(res, e);
  }
  RunParams params;
  params.max_tokens = cr.max_tokens.value_or(engine_.n_ctx() - n_prompt);
  params.sampling = cr.sampling;
  if (!cr.seed_given) params.sampling.seed = auto_seed_.fetch_add(0x9E3779B97F4A7C15ull);
  params.stop = cr.stop;

  std::shared_ptr<Ticket> ticket = engine_.admit();
  if (!ticket) {
    metrics_.count_rejected();
    ApiError e;
    e.status = 503;
    e.type = "server_error";
    e.code = "server_busy";
    e.message = "server busy: " + std::to_string(engine_.parallel()) + " slots and " +
                std::to_string(engine_.queue_limit()) + " queued requests in use; retry after " +
                std::to_string(kRetryAfterSeconds) + " s";
    res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
    return send_error(res, e);
  }
  const std::string id = next_id(chat);
  const int64_t created = int64_t(std::time(nullptr));
  const std::string model = cr.model.empty() ? engine_.model_id() : cr.model;

  if (!cr.stream) {
    auto r = engine_.run(prompt, params, {});
    if (!r.ok()) {
      log_error("request ", id, ": ", r.message());
      ApiError e;
      e.status = 500;
      e.type = "server_error";
      e.message = r.message();
      return send_error(res, e);
    }
    const RunOutcome& o = r.value();
    metrics_.add_tokens(o.n_prompt, o.n_generated);
    json choice = {{"index", 0}, {"finish_reason", run_finish_name(o.finish)}, {"logprobs", nullptr}};
    if (chat) {
      choice["message"] = {{"role", answer_role()}, {"content", sanitize_utf8(o.text)}};
    } else {
      choice["text"] = sanitize_utf8(o.text);
    }
    json body = {{"id", id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", model},
                 {"choices", json::array({choice})},
                 {"usage", usage_json(o)},
                 {"timings", timings_json(o)}};
    res.set_content(dump(body), "application/json");
    return;
  }

  // SSE. Everything after this point is sent with status 200; failures become an error event.
  auto chunk = [=](const json& delta_or_text, const json& finish) {
    json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
    if (chat) {
      choice["delta"] = delta_or_text;
    } else {
      choice["text"] = delta_or_text;
    }
    return json{{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array({choice})}};
  };
  const bool include_usage = cr.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [this, ticket, prompt, params, chunk, chat, include_usage, id, created, model](
                               size_t, httplib::DataSink& sink) {
        auto send = [&](const json& event) {
          const std::string line = "data: " + dump(event) + "\n\n";
          return sink.write(line.data(), line.size());
        };
        if (chat && !send(chunk(json{{"role", answer_role()}, {"content", ""}}, nullptr))) return false;
        auto r = engine_.run(prompt, params, [&](const std::string& text) {
          const std::string clean = sanitize_utf8(text);
          return send(chunk(chat ? json{{"content", clean}} : json(clean), nullptr));
        });
        if (!r.ok()) {
          log_error("request ", id, ": ", r.message());
          ApiError e;
          e.status = 500;
          e.type = "server_error";
          e.message = r.message();
          send(e.to_json());
          sink.done();
          return true;
        }
        const RunOutcome& o = r.value();
        metrics_.add_tokens(o.n_prompt, o.n_generated);
        if (o.finish == RunFinish::kCancelled) {
          metrics_.count_cancelled();
          log_info("request ", id, ": client went away after ", o.n_generated, " tokens; slot freed");
          return false;
        }
        send(chunk(chat ? json::object() : json(""), run_finish_name(o.finish)));
        if (include_usage) {
          send(json{{"id", id},
                    {"object", chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", created},
                    {"model", model},
                    {"choices", json::array()},
                    {"usage", usage_json(o)},
                    {"timings", timings_json(o)}});
        }
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      });
}

int HttpServer::run() {
  const int n_threads = engine_.parallel() + engine_.queue_limit() + kExtraHttpThreads;
  svr_.new_task_queue = [n_threads] { return new httplib::ThreadPool(size_t(n_threads)); };
  // A deliberately broken server says so on every response (and log.cpp on every log line), so
  // nobody mistakes a negative control's answers for the engine's.
  if (any_fault_on()) {
    svr_.set_default_headers({{"X-Popper-Faults", active_faults_text()},
                              {"Warning", "199 popper \"fault injection active: " + active_faults_text() +
                                              "; responses are deliberately wrong\""}});
  }
  svr_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, true);
  });
  svr_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, false);
  });
  svr_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", engine_.model_id()},
              {"object", "model"},
              {"created", 0},
              {"owned_by", "popper"},
              {"meta",
               {{"arch", std::string(engine_.arch().name)},
                {"n_ctx", engine_.n_ctx()},
                {"backend", std::string(engine_.backend_name())}}}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  svr_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const int busy = engine_.busy_slots();
    res.set_content(dump(json{{"status", "ok"},
                              {"slots_idle", engine_.parallel() - busy},
                              {"slots_processing", busy},
                              {"backend", std::string(engine_.backend_name())}}),
                    "application/json");
  });
  svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(engine_), "text/plain; version=0.0.4");
  });
  svr_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count_request(endpoint_label(req.path), res.status);
    log_info(req.method, " ", req.path, " ", res.status);
  });

  int port = options_.port;
  if (port == 0) {
    port = svr_.bind_to_any_port(options_.host);
    if (port <= 0) {
      log_error("cannot bind ", options_.host, " (any port)");
      return 2;
    }
  } else if (!svr_.bind_to_port(options_.host, port)) {
    log_error("cannot bind ", options_.host, ":", port);
    return 2;
  }
  if (!svr_.widen_backlog()) log_warn("listen backlog stays at httplib's 5: ", std::strerror(errno));
  log_info("listening on http://", options_.host, ":", port);
  if (!options_.port_file.empty()) {
    Status s = write_file_atomic(options_.port_file, std::to_string(port) + "\n");
    if (!s.ok()) {
      log_error("--port-file: ", s.message());
      return 2;
    }
  }
  svr_.listen_after_bind();
  return 0;
}

}  // namespace

static sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

void block_shutdown_signals() {
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int serve_until_signal(Engine& engine, const ServerOptions& options) {
  // Signals go to one thread (sigtimedwait) rather than an async handler: stop() takes locks.
  const sigset_t set = shutdown_signals();
  block_shutdown_signals();    // inherited by every thread started below
  ::signal(SIGPIPE, SIG_IGN);  // a client gone away is a failed write, not a crash

  HttpServer server(engine, options);
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!finished.load()) {
      const int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig == SIGTERM || sig == SIGINT) {
        log_info(sig == SIGTERM ? "SIGTERM" : "SIGINT", ": no new connections; finishing ", engine.admitted(),
                 " in-flight request(s)");
        // stop() is a no-op until listening has begun, so repeat it until the server is down.
        while (!finished.load()) {
          server.stop();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return;
      }
    }
  });
  const int rc = server.run();
  finished = true;
  watcher.join();
  if (rc == 0) log_info("stopped");
  return rc;
}

}  // namespace popper::serve
