#include "engine/serve/bench.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "engine/core/atomic_file.h"
#include "engine/serve/task_check.h"
#include "engine/serve/text_util.h"

namespace popper::serve {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Task {
  std::string id;
  json messages;
  json chat_template_kwargs;  // optional, sent as is
  int64_t max_tokens = 0;
  // A task-bench task has an answer (and a family); a reference task has "expected".
  std::optional<std::string> answer;
  std::string family;
  std::string expected_text;
  std::string expected_finish;
  int64_t expected_prompt_tokens = 0;
  int64_t expected_tokens = 0;
};

Result<std::vector<Task>> load_corpus(const std::string& path, json* header) {
  auto text = read_file(path);
  if (!text.ok()) return text.error();
  json doc;
  try {
    doc = json::parse(text.value());
  } catch (const json::exception& e) {
    return make_error(path, ": not valid JSON: ", e.what());
  }
  if (!doc.is_object() || !doc.contains("tasks") || !doc["tasks"].is_array()) {
    return make_error(path, ": want an object with a \"tasks\" array");
  }
  std::vector<Task> tasks;
  for (size_t i = 0; i < doc["tasks"].size(); ++i) {
    const json& t = doc["tasks"][i];
    const std::string where = path + ": tasks[" + std::to_string(i) + "]";
    try {
      Task task;
      task.id = t.at("id").get<std::string>();
      task.messages = t.at("messages");
      if (!task.messages.is_array() || task.messages.empty())
        return make_error(where, ".messages: want a non-empty array");
      task.max_tokens = t.at("max_tokens").get<int64_t>();
      if (t.contains("chat_template_kwargs")) task.chat_template_kwargs = t["chat_template_kwargs"];
      if (task.max_tokens < 1) return make_error(where, ".max_tokens: want >= 1, got ", task.max_tokens);
      if (t.contains("answer") == t.contains("expected"))
        return make_error(where, ": want exactly one of \"answer\" (a task) and \"expected\" (a reference)");
      if (t.contains("answer")) {
        task.answer = t["answer"].get<std::string>();
        task.family = t.value("family", std::string());
      } else {
        const json& e = t.at("expected");
        task.expected_text = e.at("text").get<std::string>();
        task.expected_finish = e.at("finish_reason").get<std::string>();
        task.expected_prompt_tokens = e.at("prompt_tokens").get<int64_t>();
        task.expected_tokens = int64_t(e.at("tokens").size());
      }
      tasks.push_back(std::move(task));
    } catch (const json::exception& ex) {
      return make_error(where, ": ", ex.what());
    }
  }
  if (tasks.empty()) return make_error(path, ": no tasks");
  *header = doc;
  header->erase("tasks");
  return tasks;
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

json play(const BenchOptions& o, const Task& task) {
  json r = {{"id", task.id}};
  httplib::Client cli(o.server);
  cli.set_read_timeout(std::chrono::duration<double>(o.timeout_s));
  cli.set_write_timeout(std::chrono::seconds(30));
  cli.set_connection_timeout(std::chrono::seconds(10));
  json body = {{"messages", task.messages},
               {"max_tokens", task.max_tokens},
               {"temperature", 0},
               {"seed", 0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (!task.chat_template_kwargs.is_null()) body["chat_template_kwargs"] = task.chat_template_kwargs;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();

  std::string buffer, text, finish, error;
  json usage;
  bool done = false;
  const Clock::time_point t0 = Clock::now();
  Clock::time_point t_first{}, t_last{};
  bool got_first = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      json ev = json::parse(payload, nullptr, false);
      if (ev.is_discarded()) {
        error = "malformed event: " + payload.substr(0, 200);
        return false;
      }
      if (ev.contains("error")) {
        error = "server error event: " + ev["error"].value("message", std::string("?"));
        return false;
      }
      if (ev.contains("usage") && ev["usage"].is_object()) usage = ev["usage"];
      if (!ev.contains("choices") || ev["choices"].empty()) continue;
      const json& c = ev["choices"][0];
      if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) {
        const std::string piece = c["delta"]["content"].get<std::string>();
        if (!piece.empty()) {
          if (!got_first) t_first = Clock::now();
          got_first = true;
          t_last = Clock::now();
          text += piece;
        }
      }
      if (c.contains("finish_reason") && c["finish_reason"].is_string())
        finish = c["finish_reason"].get<std::string>();
    }
    return true;
  };
  auto res = cli.send(req);
  const Clock::time_point t_end = Clock::now();
  r["latency_s"] = seconds(t0, t_end);
  if (!res) {
    r["verdict"] = "error";
    r["reason"] = error.empty() ? "request failed: " + httplib::to_string(res.error()) : error;
    return r;
  }
  if (res->status != 200) {
    r["verdict"] = "error";
    r["reason"] = "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300);
    return r;
  }
  if (!error.empty() || !done || !usage.is_object()) {
    r["verdict"] = "error";
    r["reason"] = !error.empty() ? error : !done ? "stream ended without [DONE]" : "no usage chunk";
    return r;
  }
  const int64_t n_prompt = usage.value("prompt_tokens", int64_t(-1));
  const int64_t n_completion = usage.value("completion_tokens", int64_t(-1));
  r["prompt_tokens"] = n_prompt;
  r["completion_tokens"] = n_completion;
  r["finish_reason"] = finish;
  r["text"] = text;
  if (got_first) r["ttft_s"] = seconds(t0, t_first);
  if (got_first && n_completion >= 2 && t_last > t_first) {
    r["decode_tokens_per_second"] = double(n_completion - 1) / seconds(t_first, t_last);
  }
  if (task.answer) {
    // A task passes when the answer parsed from the reply is right, whatever the tokens.
    const std::string given = parse_task_answer(text);
    r["family"] = task.family;
    r["answer"] = *task.answer;
    r["parsed_answer"] = sanitize_utf8(given);
    r["verdict"] = given == *task.answer ? "pass" : "fail";
    if (given != *task.answer)
      r["reason"] = "answered '" + sanitize_utf8(given.substr(0, 80)) + "', want '" + *task.answer + "'";
    return r;
  }
  r["expected_text"] = task.expected_text;
  std::string why;
  if (n_prompt != task.expected_prompt_tokens) {
    why = "prompt_tokens " + std::to_string(n_prompt) + ", reference " +
          std::to_string(task.expected_prompt_tokens);
  } else if (finish != task.expected_finish) {
    why = "finish_reason " + finish + ", reference " + task.expected_finish;
  } else if (text != task.expected_text) {
    size_t at = 0;
    while (at < text.size() && at < task.expected_text.size() && text[at] == task.expected_text[at]) ++at;
    why = "text differs from the reference at byte " + std::to_string(at);
  } else if (n_completion != task.expected_tokens) {
    why = "completion_tokens " + std::to_string(n_completion) + ", reference " +
          std::to_string(task.expected_tokens);
  }
  r["verdict"] = why.empty() ? "pass" : "fail";
  if (!why.empty()) r["reason"] = why;
  return r;
}

json summary(std::vector<double> v) {
  if (v.empty()) return json{{"n", 0}};
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto q = [&](double p) { return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))]; };
  return json{{"n", v.size()},    {"median", q(0.5)}, {"p90", q(0.9)},
              {"min", v.front()}, {"max", v.back()},  {"mean", sum / double(v.size())},
              {"samples", v}};
}

}  // namespace

Result<json> run_bench(const BenchOptions& o) {
  if (o.concurrency < 1 || o.concurrency > 256)
    return make_error("--concurrency: want 1..256, got ", o.concurrency);
  json header;
  auto tasks = load_corpus(o.corpus, &header);
  if (!tasks.ok()) return tasks.error();
  json models;
  {
    httplib::Client cli(o.server);
    cli.set_connection_timeout(std::chrono::seconds(10));
    auto health = cli.Get("/health");
    if (!health || health->status != 200) {
      return make_error(
          o.server, ": GET /health: ",
          health ? "HTTP " + std::to_string(health->status) : httplib::to_string(health.error()));
    }
    auto m = cli.Get("/v1/models");
    if (m && m->status == 200) models = json::parse(m->body, nullptr, false);
  }
  std::vector<json> results(tasks->size());
  std::atomic<size_t> next{0};
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < o.concurrency; ++w) {
    workers.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < tasks->size();) results[i] = play(o, (*tasks)[i]);
    });
  }
  for (auto& t : workers) t.join();
  const double wall = seconds(t0, Clock::now());

  int64_t passed = 0, failed = 0, errors = 0, completion_tokens = 0;
  std::vector<double> latency, ttft, tps;
  json families = json::object();  // task-bench corpora: {family: {"passed", "n", "pass_rate"}}
  for (const json& r : results) {
    const std::string v = r["verdict"];
    if (r.contains("family")) {
      json& f = families[r["family"].get<std::string>()];
      if (f.is_null()) f = {{"passed", 0}, {"n", 0}};
      f["passed"] = f["passed"].get<int64_t>() + (v == "pass");
      f["n"] = f["n"].get<int64_t>() + 1;
      f["pass_rate"] = f["passed"].get<double>() / f["n"].get<double>();
    }
    passed += v == "pass";
    failed += v == "fail";
    errors += v == "error";
    latency.push_back(r["latency_s"].get<double>());
    if (r.contains("ttft_s")) ttft.push_back(r["ttft_s"].get<double>());
    if (r.contains("decode_tokens_per_second")) tps.push_back(r["decode_tokens_per_second"].get<double>());
    if (r.contains("completion_tokens")) completion_tokens += r["completion_tokens"].get<int64_t>();
  }
  const double n = double(results.size());
  json scores = {{"server", o.server},
                 {"corpus", o.corpus},
                 {"corpus_header", header},
                 {"served_models", models.is_discarded() ? json() : models},
                 {"concurrency", o.concurrency},
                 {"n_tasks", results.size()},
                 {"passed", passed},
                 {"failed", failed},
                 {"errors", errors},
                 {"student_pass_rate", double(passed) / n},
                 {"families", families},
                 {"wall_seconds", wall},
                 {"completion_tokens", completion_tokens},
                 {"throughput_tokens_per_second", wall > 0 ? double(completion_tokens) / wall : 0.0},
                 {"latency_s", summary(latency)},
                 {"ttft_s", summary(ttft)},
                 {"decode_tokens_per_second", summary(tps)},
                 {"tasks", results}};
  return scores;
}

}  // namespace popper::serve
