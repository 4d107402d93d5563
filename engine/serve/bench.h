// `popper bench`: plays a corpus of chat tasks against a running OpenAI-compatible server and
// scores each against its reference continuation.
//
// Corpus (JSON, written by scripts/make_serve_references.py):
//   {"model": name, "sha256": digest of the GGUF the references were made on,
//    "reference": {"engine": "llama.cpp", ...},
//    "tasks": [{"id", "messages": [...], "max_tokens",
//               "expected": {"text", "tokens": [...], "prompt_tokens", "finish_reason"}}]}
// Each task is sent greedily (temperature 0) with stream: true. It passes when the status is
// 200 and the streamed text, finish_reason and prompt token count equal the reference; it fails
// when it differs, and is an error when the request or the stream breaks.
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
