// Falsifiers of the server's OpenAI surface (issue 5): SSE streaming, sampling determinism,
// stop strings, the bad-request table, the bounded queue (503 + Retry-After), client disconnect,
// SIGTERM. Each test boots `popper serve` on the tiny qwen3moe model as a child process on
// 127.0.0.1 and talks real HTTP.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

const std::string kChat = "/v1/chat/completions";
// A completion long enough to still be generating while the test acts (the tiny model decodes
// thousands of tokens per second; the context is 4096).
constexpr int kLongCompletion = 3500;

// Content of a chat (or text) completion response, with finish_reason.
struct Completion {
  int status = 0;
  std::string text, finish;
  json body;
};
Completion complete(httplib::Client& c, const std::string& path, const json& req) {
  Completion out;
  auto r = post_json(c, path, req);
  if (!r) {
    ADD_FAILURE() << "no response: " << httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.body = json::parse(r->body, nullptr, false);
  if (r->status == 200 && out.body.is_object()) {
    const json& ch = out.body["choices"][0];
    out.text = path == kChat ? ch["message"]["content"].get<std::string>() : ch["text"].get<std::string>();
    out.finish = ch["finish_reason"];
  }
  return out;
}

// The streamed text, finish_reason and usage of an SSE response.
struct Streamed {
  std::string text, finish;
  json usage;
  int content_events = 0;
  bool done_last = false;
};
Streamed collect(const SseStream& s, bool chat) {
  Streamed out;
  for (size_t i = 0; i < s.events.size(); ++i) {
    if (s.events[i] == "[DONE]") {
      out.done_last = i + 1 == s.events.size();
      continue;
    }
    const json ev = json::parse(s.events[i]);
    if (ev.contains("usage")) out.usage = ev["usage"];
    if (ev["choices"].empty()) continue;
    const json& ch = ev["choices"][0];
    const std::string piece =
        chat ? ch["delta"].value("content", std::string()) : ch["text"].get<std::string>();
    if (!piece.empty()) ++out.content_events;
    out.text += piece;
    if (ch["finish_reason"].is_string()) out.finish = ch["finish_reason"];
  }
  return out;
}

json sampled(const std::string& user, int max_tokens, double temperature, std::optional<int64_t> seed) {
  json b = chat_body(user, max_tokens);
  b["temperature"] = temperature;
  if (seed) b["seed"] = *seed;
  return b;
}

class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess(moe_model_path(), {"--ctx", "4096"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << "server did not start:\n" << server_->log(); }
  static ServerProcess* server_;
};
ServerProcess* ServeApi::server_ = nullptr;

TEST_F(ServeApi, StreamSendsAtLeast8EventsFor16TokensSpacedInTimeEndingWithDone) {
  json req = chat_body("Stream sixteen tokens, please.", 16);
  req["stream"] = true;
  SseStream s = post_sse("127.0.0.1", server_->port(), kChat, req);
  ASSERT_EQ(s.status, 200);
  Streamed st = collect(s, true);
  EXPECT_TRUE(st.done_last) << "the stream must end with data: [DONE]";
  EXPECT_GE(st.content_events, 8);
  EXPECT_FALSE(st.finish.empty()) << "no chunk carried a finish_reason";
  // The first chunk announces the assistant role.
  const json first = json::parse(s.events.front());
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  // Events arrive as tokens are made, not in one write at the end.
  std::set<int64_t> arrival_us;
  for (const auto& t : s.times)
    arrival_us.insert(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
  EXPECT_GE(arrival_us.size(), 4u) << "events did not arrive spread over time";
  EXPECT_GT(s.times.back() - s.times.front(), std::chrono::microseconds(0));
  RecordProperty("events", std::to_string(s.events.size()));
}

TEST_F(ServeApi, StreamedTextEqualsNonStreamedTextForTheSameSeed) {
  auto c = server_->client();
  for (const std::string& path : {kChat, std::string("/v1/completions")}) {
    const bool chat = path == kChat;
    json req =
        chat ? sampled("Tell me something.", 16, 0.7, 1234)
             : json{{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"temperature", 0.7}, {"seed", 1234}};
    const Completion plain = complete(*c, path, req);
    ASSERT_EQ(plain.status, 200) << plain.body.dump();
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}};
    SseStream s = post_sse("127.0.0.1", server_->port(), path, req);
    ASSERT_EQ(s.status, 200);
    Streamed st = collect(s, chat);
    EXPECT_TRUE(st.done_last) << path;
    EXPECT_EQ(st.text, plain.text) << path;
    EXPECT_EQ(st.finish, plain.finish) << path;
    EXPECT_EQ(st.usage, plain.body["usage"]) << path;
  }
}

TEST_F(ServeApi, GreedyIsDeterministic) {
  auto c = server_->client();
  const Completion a = complete(*c, kChat, sampled("Determinism check.", 24, 0.0, 1));
  const Completion b = complete(*c, kChat, sampled("Determinism check.", 24, 0.0, 999));
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200);
  EXPECT_FALSE(a.text.empty());
  EXPECT_EQ(a.text, b.text)
      << "greedy output changed between identical requests (seed must not matter at T=0)";
}

TEST_F(ServeApi, SameSeedGivesSameOutputAtTemperature07) {
  auto c = server_->client();
  const Completion a = complete(*c, kChat, sampled("Sample me.", 24, 0.7, 42));
  const Completion b = complete(*c, kChat, sampled("Sample me.", 24, 0.7, 42));
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.text, b.text);
}

TEST_F(ServeApi, DifferentSeedsGiveDifferentOutputsAtTemperature07) {
  auto c = server_->client();
  std::set<std::string> outputs;
  for (int64_t seed : {1, 2, 3, 4}) {
    const Completion r = complete(*c, kChat, sampled("Sample me.", 24, 0.7, seed));
    ASSERT_EQ(r.status, 200);
    outputs.insert(r.text);
  }
  EXPECT_GT(outputs.size(), 1u) << "four seeds gave one output: the seed is ignored";
}

TEST_F(ServeApi, TopK1EqualsGreedy) {
  auto c = server_->client();
  const Completion greedy = complete(*c, kChat, sampled("Top-k one.", 24, 0.0, 0));
  json req = sampled("Top-k one.", 24, 1.0, 77);
  req["top_k"] = 1;
  const Completion k1 = complete(*c, kChat, req);
  ASSERT_EQ(greedy.status, 200);
  ASSERT_EQ(k1.status, 200);
  EXPECT_EQ(k1.text, greedy.text);
}

TEST_F(ServeApi, MaxTokensEndsWithLengthAndStopStringCutsTheText) {
  auto c = server_->client();
  const Completion full = complete(*c, kChat, sampled("Stop strings.", 32, 0.0, 0));
  ASSERT_EQ(full.status, 200);
  if (full.finish == "length") {
    EXPECT_EQ(full.body["usage"]["completion_tokens"], 32);
  }
  // A stop string taken from the second half of the greedy text.
  std::string stop;
  for (size_t i = full.text.size() / 2; i < full.text.size(); ++i) {
    if (std::isalnum(static_cast<unsigned char>(full.text[i]))) {
      stop = full.text.substr(i, 1);
      break;
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no ASCII letter in the greedy text to stop on: " << full.text;
  json req = sampled("Stop strings.", 32, 0.0, 0);
  req["stop"] = json::array({stop, "\x01never"});
  const Completion cut = complete(*c, kChat, req);
  ASSERT_EQ(cut.status, 200);
  EXPECT_EQ(cut.finish, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  // Streaming holds back a possible stop prefix and cuts at the same place.
  req["stream"] = true;
  Streamed st = collect(post_sse("127.0.0.1", server_->port(), kChat, req), true);
  EXPECT_EQ(st.text, cut.text);
  EXPECT_EQ(st.finish, "stop");
}

TEST_F(ServeApi, ModelsHealthAndCompletionsEndpointsAnswerInOpenAiShapes) {
  auto c = server_->client();
  auto m = c->Get("/v1/models");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  const json models = json::parse(m->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], fs::path(moe_model_path()).filename().string());
  EXPECT_EQ(models["data"][0]["object"], "model");
  auto h = c->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  const Completion t =
      complete(*c, "/v1/completions", json{{"prompt", "The quick brown fox"}, {"max_tokens", 8}});
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.body["object"], "text_completion");
  EXPECT_FALSE(t.text.empty());
  EXPECT_EQ(t.body["usage"]["completion_tokens"].get<int>() + t.body["usage"]["prompt_tokens"].get<int>(),
            t.body["usage"]["total_tokens"].get<int>());
}

struct BadRequest {
  const char* name;
  std::string path;
  std::string body;
  int status;
  std::string message_part;  // substring of error.message
  std::string param;         // error.param ("" for null)
};

TEST(ServeErrors, BadRequestTableEachGetsItsStatusAndMessageAndTheServerStaysUp) {
  // A small context to reach the length check cheaply, and a 1 MiB body limit.
  ServerProcess server(moe_model_path(), {"--ctx", "64", "--max-body-mib", "1"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto c = server.client();
  auto user = [](const json& content) { return json::array({json{{"role", "user"}, {"content", content}}}); };
  auto with = [&](const char* key, const json& v) {
    json b = {{"messages", user("hi")}};
    b[key] = v;
    return b.dump();
  };
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "word ";
  const std::vector<BadRequest> table = {
      {"truncated JSON", kChat, "{\"messages\": [", 400, "not valid JSON", ""},
      {"JSON array body", kChat, "[]", 400, "want a JSON object, got array", ""},
      {"no messages", kChat, "{}", 400, "messages: required field missing", "messages"},
      {"messages not an array", kChat, R"({"messages": "hi"})", 400,
       "messages: want an array of messages, got string", "messages"},
      {"empty messages", kChat, R"({"messages": []})", 400, "want at least one message", "messages"},
      {"message not an object", kChat, R"({"messages": [1]})", 400,
       "messages[0]: want an object, got integer", "messages[0]"},
      {"no role", kChat, R"({"messages": [{"content": "x"}]})", 400,
       "messages[0].role: required field missing", "messages[0].role"},
      {"unknown role", kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "want one of system, user, assistant, tool", "messages[0].role"},
      {"content a number", kChat, json{{"messages", user(5)}}.dump(), 400,
       "messages[0].content: want a string or an array of text parts, got integer", "messages[0].content"},
      {"image part", kChat, json{{"messages", user(json::array({json{{"type", "image_url"}}}))}}.dump(), 400,
       "only \"text\" parts", "messages[0].content[0].type"},
      {"max_tokens a string", kChat, with("max_tokens", "ten"), 400,
       "max_tokens: want an integer, got string", "max_tokens"},
      {"max_tokens zero", kChat, with("max_tokens", 0), 400, "max_tokens: want an integer in [1, ",
       "max_tokens"},
      {"temperature negative", kChat, with("temperature", -1), 400, "temperature: want a number in [0, 2",
       "temperature"},
      {"temperature a string", kChat, with("temperature", "hot"), 400,
       "temperature: want a number, got string", "temperature"},
      {"top_p zero", kChat, with("top_p", 0), 400, "top_p: want a number in (0", "top_p"},
      {"top_k negative", kChat, with("top_k", -1), 400, "top_k: want an integer in [0, ", "top_k"},
      {"seed fractional", kChat, with("seed", 1.5), 400, "seed: want an integer, got number", "seed"},
      {"stop a number", kChat, with("stop", 5), 400,
       "stop: want a string or an array of strings, got integer", "stop"},
      {"five stop strings", kChat, with("stop", json::array({"a", "b", "c", "d", "e"})), 400,
       "stop: want at most 4 strings, got 5", "stop"},
      {"empty stop string", kChat, with("stop", ""), 400, "stop strings must not be empty", "stop"},
      {"stream a string", kChat, with("stream", "yes"), 400, "stream: want a boolean, got string", "stream"},
      {"n above 1", kChat, with("n", 2), 400, "n: want an integer in [1, 1], got 2", "n"},
      {"completions without prompt", "/v1/completions", "{}", 400, "prompt: required field missing",
       "prompt"},
      {"completions prompt a number", "/v1/completions", R"({"prompt": 3})", 400,
       "prompt: want a string, got integer", "prompt"},
      {"prompt past the context", kChat, json{{"messages", user(long_prompt)}}.dump(), 400,
       "tokens but the context holds 64 positions", "messages"},
      {"unknown route", "/v1/nope", "{}", 404, "unknown route: POST /v1/nope", ""},
      {"body over the limit", kChat, std::string(2u << 20, ' '), 413,
       "larger than the limit of 1048576 bytes", ""},
  };
  for (const BadRequest& b : table) {
    SCOPED_TRACE(b.name);
    auto r = c->Post(b.path.c_str(), b.body, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, b.status) << r->body;
    const json e = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << r->body;
    EXPECT_NE(e["error"]["message"].get<std::string>().find(b.message_part), std::string::npos) << r->body;
    EXPECT_TRUE(e["error"]["type"].is_string());
    if (b.param.empty()) {
      EXPECT_TRUE(e["error"]["param"].is_null()) << r->body;
    } else {
      EXPECT_EQ(e["error"]["param"], b.param) << r->body;
    }
    auto h = c->Get("/health");
    ASSERT_TRUE(h) << "server down after: " << b.name;
    EXPECT_EQ(h->status, 200);
  }
  auto get404 = c->Get("/v1/unknown");
  ASSERT_TRUE(get404);
  EXPECT_EQ(get404->status, 404);
  // The context error carries both numbers.
  auto r = c->Post(kChat.c_str(), json{{"messages", user(long_prompt)}}.dump(), "application/json");
  ASSERT_TRUE(r);
  const json e = json::parse(r->body);
  EXPECT_EQ(e["error"]["code"], "context_length_exceeded");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("the prompt is 2"), std::string::npos) << r->body;
  EXPECT_TRUE(server.process().running());
  RecordProperty("cases", std::to_string(table.size()));
}

// Waits until the server reports `busy` slots in /metrics (a generation has begun).
bool wait_busy(httplib::Client& c, double busy) {
  for (int i = 0; i < 500; ++i) {
    if (get_metrics(c)["popper_slots_busy"] == busy) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ServeLimits, QueueFullGets503WithRetryAfter) {
  ServerProcess server(moe_model_path(), {"--parallel", "1", "--queue", "0"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto c = server.client();
  std::atomic<bool> cancel{false};
  json req = chat_body("Keep going.", kLongCompletion);
  req["stream"] = true;
  std::thread hog([&] { post_sse("127.0.0.1", server.port(), kChat, req, -1, &cancel); });
  const bool busy = wait_busy(*c, 1);
  auto r = post_json(*c, kChat, chat_body("Me too.", 4));
  cancel = true;
  hog.join();
  ASSERT_TRUE(busy) << "the long request never occupied the slot";
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "server_busy");
  // Once the slot is free the same request succeeds.
  ASSERT_TRUE(wait_busy(*c, 0));
  auto again = post_json(*c, kChat, chat_body("Me too.", 4));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(get_metrics(*c)["popper_requests_rejected_total"], 1);
}

TEST(ServeLimits, ClientDisconnectMidStreamFreesTheSlot) {
  ServerProcess server(moe_model_path(), {"--parallel", "1"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto c = server.client();
  json req = chat_body("Talk for a long time.", kLongCompletion);
  req["stream"] = true;
  SseStream s = post_sse("127.0.0.1", server.port(), kChat, req, 5);  // read 5 events, then hang up
  EXPECT_EQ(s.events.size(), 5u);
  double cancelled = 0;
  for (int i = 0; i < 500 && cancelled == 0; ++i) {
    cancelled = get_metrics(*c)["popper_requests_cancelled_total"];
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(cancelled, 1) << "the generation did not notice the client leaving";
  const auto m = get_metrics(*c);
  EXPECT_EQ(m.at("popper_slots_busy"), 0);
  EXPECT_LT(m.at("popper_completion_tokens_total"), kLongCompletion)
      << "the abandoned generation ran to the end";
  auto r = post_json(*c, kChat, chat_body("Next.", 4));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(server.log().find("client went away"), std::string::npos);
}

TEST(ServeLimits, SigtermFinishesTheInFlightRequestAndExits0) {
  ServerProcess server(moe_model_path(), {"--parallel", "1"});
  ASSERT_TRUE(server.ok()) << server.log();
  // Long enough that SIGTERM lands mid-generation (the log line below proves it), short enough
  // that the drain fits the 30 s bound under TSan on a slow machine (2000 tokens took 30 s on a
  // fast one).
  constexpr int kTokens = 400;
  json req = chat_body("Finish this before you go.", kTokens);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  std::atomic<bool> started{false};
  SseStream s;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    httplib::Request hr;
    hr.method = "POST";
    hr.path = kChat;
    hr.set_header("Content-Type", "application/json");
    hr.body = req.dump();
    std::string buffer;
    hr.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      buffer.append(data, n);
      size_t end;
      while ((end = buffer.find("\n\n")) != std::string::npos) {
        s.events.push_back(buffer.substr(6, end - 6));
        buffer.erase(0, end + 2);
        started = true;
      }
      return true;
    };
    auto r = c.send(hr);
    s.status = r ? r->status : -1;
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server.process().signal(SIGTERM);
  const auto rc = server.process().wait_exit(std::chrono::seconds(30));
  client.join();
  ASSERT_TRUE(rc.has_value()) << "server still running 30 s after SIGTERM";
  EXPECT_EQ(*rc, 0) << server.log();
  EXPECT_EQ(s.status, 200);
  Streamed st = collect(s, true);
  EXPECT_TRUE(st.done_last) << "the in-flight stream was cut by SIGTERM";
  if (st.finish == "length") {
    EXPECT_EQ(st.usage["completion_tokens"], kTokens);
  }
  // The signal arrived while the request was generating, not after it.
  EXPECT_NE(server.log().find("SIGTERM: no new connections; finishing 1 in-flight request(s)"),
            std::string::npos)
      << server.log();
}

// A server with a fault on (a negative control's) must never pass for the real one: every
// response carries the warning headers and every log line the banner.
TEST(ServeFaults, AFaultedServerWarnsOnEveryResponseHeaderAndLogLine) {
  ::setenv("POPPER_FAULTS", "serve_wrong_role", 1);
  ServerProcess server(moe_model_path());
  ::unsetenv("POPPER_FAULTS");
  ASSERT_TRUE(server.ok()) << server.log();
  auto c = server.client();
  auto health = c->Get("/health");
  auto missing = c->Get("/no/such/route");
  auto r = post_json(*c, kChat, chat_body("Hello.", 4));
  for (const auto* res : {&health, &missing, &r}) {
    ASSERT_TRUE(*res);
    EXPECT_EQ((*res)->get_header_value("X-Popper-Faults"), "serve_wrong_role") << (*res)->status;
    EXPECT_NE((*res)->get_header_value("Warning").find("fault injection active: serve_wrong_role"),
              std::string::npos)
        << (*res)->status;
  }
  EXPECT_EQ(missing->status, 404);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["role"], "user") << "the fault itself, at work";
  std::istringstream log(server.log());
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.rfind("popper ", 0) != 0 || line.rfind("popper: ", 0) == 0) continue;  // "popper info: ..."
    ++lines;
    EXPECT_NE(line.find("[FAULTS serve_wrong_role]"), std::string::npos) << line;
  }
  EXPECT_GE(lines, 2) << server.log();  // "listening on", the request lines
  EXPECT_NE(server.log().find("WARNING: fault injection active (POPPER_FAULTS=serve_wrong_role)"),
            std::string::npos);
}

TEST(ServeFaults, AHealthyServerSendsNoFaultHeaders) {
  ServerProcess server(moe_model_path());
  ASSERT_TRUE(server.ok()) << server.log();
  auto health = server.client()->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_FALSE(health->has_header("X-Popper-Faults"));
  EXPECT_EQ(server.log().find("FAULTS"), std::string::npos) << server.log();
}

}  // namespace
}  // namespace popper::testing
