// Fuzz target: the OpenAI request parser of `popper serve` (engine/serve/api.h) and the chat
// template render the server runs on what it accepts.
//
// The body is parsed as both endpoints do (chat and completions). Properties: an error is a 400
// whose message starts with the field it names, and its JSON goes out as the server sends it
// (invalid UTF-8 replaced, never a throw); an accepted request keeps the documented bounds
// (max_tokens >= 1, temperature in [0, 2], top_p in (0, 1], top_k >= 0, at most 4 non-empty stop
// strings, known roles) and parses back to the same request from its canonical JSON; an
// accepted chat renders with the Qwen3 template.
#include <cmath>

#include "engine/core/atomic_file.h"
#include "engine/serve/api.h"
#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {
namespace {

using serve::CompletionRequest;
using serve::json;

// The request as a client would write it, every field the parser read spelled out.
json canonical(const CompletionRequest& r) {
  json j = json::object();
  if (r.chat) {
    json msgs = json::array();
    for (const auto& m : r.messages) {
      json jm = {{"role", m.role}, {"content", m.content}};
      if (m.reasoning_content) jm["reasoning_content"] = *m.reasoning_content;
      msgs.push_back(jm);
    }
    j["messages"] = msgs;
    j["chat_template_kwargs"] = {{"enable_thinking", r.chat_options.enable_thinking}};
  } else {
    j["prompt"] = r.prompt;
  }
  if (!r.model.empty()) j["model"] = r.model;
  if (r.max_tokens) j["max_tokens"] = *r.max_tokens;
  j["temperature"] = double(r.sampling.temperature);
  j["top_p"] = double(r.sampling.top_p);
  j["top_k"] = r.sampling.top_k;
  if (r.seed_given) j["seed"] = int64_t(r.sampling.seed);
  if (!r.stop.empty()) j["stop"] = r.stop;
  j["stream"] = r.stream;
  j["stream_options"] = {{"include_usage", r.include_usage}};
  return j;
}

bool same(const CompletionRequest& a, const CompletionRequest& b) {
  if (a.messages.size() != b.messages.size()) return false;
  for (size_t i = 0; i < a.messages.size(); ++i)
    if (a.messages[i].role != b.messages[i].role || a.messages[i].content != b.messages[i].content ||
        a.messages[i].reasoning_content != b.messages[i].reasoning_content)
      return false;
  return a.chat == b.chat && a.prompt == b.prompt && a.model == b.model && a.max_tokens == b.max_tokens &&
         a.sampling.temperature == b.sampling.temperature && a.sampling.top_p == b.sampling.top_p &&
         a.sampling.top_k == b.sampling.top_k && a.seed_given == b.seed_given &&
         a.sampling.seed == b.sampling.seed && a.stop == b.stop && a.stream == b.stream &&
         a.include_usage == b.include_usage &&
         a.chat_options.enable_thinking == b.chat_options.enable_thinking;
}

void check_accepted(const CompletionRequest& r) {
  fuzz_require(!r.max_tokens || (*r.max_tokens >= 1 && *r.max_tokens <= INT32_MAX), "max_tokens in bounds");
  const auto& s = r.sampling;
  fuzz_require(std::isfinite(s.temperature) && s.temperature >= 0 && s.temperature <= 2,
               "temperature in [0, 2]");
  fuzz_require(s.top_p > 0 && s.top_p <= 1, "top_p in (0, 1]");
  fuzz_require(s.top_k >= 0, "top_k >= 0");
  fuzz_require(r.stop.size() <= serve::kMaxStopStrings, "at most 4 stop strings");
  for (const auto& st : r.stop) fuzz_require(!st.empty(), "stop strings are not empty");
  if (!r.chat) {
    fuzz_require(!r.prompt.empty(), "a completion has a prompt");
    return;
  }
  fuzz_require(!r.messages.empty(), "a chat has messages");
  auto prompt = ChatTemplate::qwen3().render(r.messages, r.chat_options);
  fuzz_require(prompt.ok(), "an accepted chat renders: " + (prompt.ok() ? "" : prompt.message()));
}

void api_one_input(Bytes data) {
  const std::string body(data.begin(), data.end());
  for (bool chat : {true, false}) {
    CompletionRequest req;
    if (auto err = serve::parse_completion_request(body, chat, &req)) {
      fuzz_require(err->status == 400 && !err->message.empty(), "an error is a 400 with a message");
      fuzz_require(err->param.empty() || err->message.rfind(err->param + ": ", 0) == 0,
                   "the message starts with the field: " + err->message);
      // As engine/serve/server.cpp sends it.
      const std::string sent = err->to_json().dump(-1, ' ', false, json::error_handler_t::replace);
      fuzz_require(json::accept(sent), "the error body is JSON");
      continue;
    }
    fuzz_require(req.chat == chat, "the request knows its endpoint");
    check_accepted(req);
    CompletionRequest again;
    const std::string text = canonical(req).dump();
    auto err = serve::parse_completion_request(text, chat, &again);
    fuzz_require(!err, "the canonical form parses: " + (err ? err->message : "") + " in " + text);
    fuzz_require(same(req, again), "the canonical form parses to the same request: " + text);
  }
}

// Seeds: the serving falsifiers' task requests (falsifiers/fixtures/serve/tasks.jsonl), one
// body per line.
int api_seeds(const std::string& dir) {
  auto text = read_file(source_dir() + "/falsifiers/fixtures/serve/tasks.jsonl");
  if (!text.ok()) return -1;
  int n = 0;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    if (end > start && !write_seed(dir, "task-" + std::to_string(n++), text->substr(start, end - start)))
      return -1;
    start = end + 1;
  }
  return n;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(api, popper::fuzz::api_one_input, popper::fuzz::api_seeds);
