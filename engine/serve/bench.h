// `popper bench`: plays a corpus of chat tasks against a running OpenAI-compatible server and
// scores each reply.
//
// Corpus (JSON). A task is one of two kinds:
//   a task with an answer (falsifiers/fixtures/trained/tasks.json, scripts/train_tiny.py):
//     {"id", "family", "messages": [...], "max_tokens", "answer"}
//     passes when the answer parsed from the reply (task_check.h) equals "answer";
//   a reference continuation (scripts/make_serve_references.py, for models that know nothing):
//     {"id", "messages", "max_tokens",
//      "expected": {"text", "tokens": [...], "prompt_tokens", "finish_reason"}}
//     passes when the streamed text, finish_reason and prompt token count equal the reference.
// The rest of the document ("model", "sha256", ...) is copied into the scores as corpus_header.
// Each task is sent greedily (temperature 0) with stream: true; it is an error when the request
// or the stream breaks. Task-bench scores add "families": {family: {passed, n, pass_rate}}.
//
// Figures per task, measured by the client: latency (request to [DONE]), time to first token
// (request to the first content event) and decode tokens/s ((completion_tokens - 1) / (last
// event - first content event)).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/core/result.h"

namespace popper::serve {

struct BenchOptions {
  std::string server;  // "http://127.0.0.1:8080"
  std::string corpus;
  int concurrency = 4;
  double timeout_s = 300;  // per request
};

// Runs the corpus; returns the scores document (see docs/serve.md). Errors: an unreadable or
// malformed corpus (naming the task and field), a server that does not answer GET /health.
Result<nlohmann::json> run_bench(const BenchOptions& options);

}  // namespace popper::serve
