// Every request field at its bounds and past them, against `popper serve` (issue 13 part 3):
// each case gets the status the table states (200 inside the bounds, 400 naming the field
// outside them) and never a 5xx; the server is idle and healthy afterwards.
#include <gtest/gtest.h>

#include <limits>

#include "falsifiers/serve_abuse_util.h"

namespace popper::testing {
namespace {

constexpr int kCtx = 256;  // --ctx: small, so "longer than the context" is cheap to build

struct Case {
  const char* name;
  std::string path;
  std::string body;  // raw, so that invalid JSON and odd numbers go out as written
  int status;
  const char* param = "";  // the field a 400 must name ("" for none)
};

json chat_with(const std::string& key, const json& value) {
  json b = chat_body("bounds", 2);
  b[key] = value;
  return b;
}
// Sampled (temperature 1, top_p 0.5) so that temperature and top_p take part in the draw.
json sampled_with(const std::string& key, const json& value) {
  json b = chat_body("bounds", 2);
  b["temperature"] = 1;
  b["top_p"] = 0.5;
  b[key] = value;
  return b;
}
std::string with(const std::string& key, const std::string& raw_value) {
  std::string b = chat_body("bounds", 2).dump();
  return b.substr(0, b.size() - 1) + ",\"" + key + "\":" + raw_value + "}";
}
json messages_of(const json& content) {
  return json{{"messages", json::array({json{{"role", "user"}, {"content", content}}})}, {"max_tokens", 2}};
}

std::vector<Case> cases() {
  const std::string chat = "/v1/chat/completions", comp = "/v1/completions";
  const std::string int32_max = std::to_string(std::numeric_limits<int32_t>::max());
  std::vector<Case> v = {
      // max_tokens
      {"max_tokens 0", chat, chat_with("max_tokens", 0).dump(), 400, "max_tokens"},
      {"max_tokens 1", chat, chat_with("max_tokens", 1).dump(), 200},
      {"max_tokens int32 max", chat, chat_with("max_tokens", std::numeric_limits<int32_t>::max()).dump(),
       200},
      {"max_tokens int32 max + 1", chat, with("max_tokens", int32_max + "1"), 400, "max_tokens"},
      {"max_tokens 2^64", chat, with("max_tokens", "18446744073709551616"), 400, "max_tokens"},
      {"max_tokens -1", chat, chat_with("max_tokens", -1).dump(), 400, "max_tokens"},
      {"max_tokens 1.5", chat, chat_with("max_tokens", 1.5).dump(), 400, "max_tokens"},
      {"max_tokens string", chat, chat_with("max_tokens", "8").dump(), 400, "max_tokens"},
      {"max_completion_tokens 0", chat, chat_with("max_completion_tokens", 0).dump(), 400,
       "max_completion_tokens"},
      // temperature, top_p, top_k, seed, n
      {"temperature 0", chat, chat_with("temperature", 0).dump(), 200},
      {"temperature 2", chat, chat_with("temperature", 2).dump(), 200},
      {"temperature 1e-30", chat, chat_with("temperature", 1e-30).dump(), 200},
      {"temperature 1e-300", chat, chat_with("temperature", 1e-300).dump(), 200},
      {"temperature 2.0001", chat, chat_with("temperature", 2.0001).dump(), 400, "temperature"},
      {"temperature -0.1", chat, chat_with("temperature", -0.1).dump(), 400, "temperature"},
      {"temperature 1e400", chat, with("temperature", "1e400"), 400},
      {"temperature null", chat, with("temperature", "null"), 200},
      {"top_p 1", chat, chat_with("top_p", 1).dump(), 200},
      {"top_p 1e-30, temperature 1", chat, sampled_with("top_p", 1e-30).dump(), 200},
      {"top_p 1e-300, temperature 1", chat, sampled_with("top_p", 1e-300).dump(), 200},
      {"temperature 1e-300, top_p 0.5", chat, sampled_with("temperature", 1e-300).dump(), 200},
      {"top_p 0", chat, chat_with("top_p", 0).dump(), 400, "top_p"},
      {"top_p 1.0000001", chat, chat_with("top_p", 1.0000001).dump(), 400, "top_p"},
      {"top_k 0", chat, chat_with("top_k", 0).dump(), 200},
      {"top_k int32 max", chat, chat_with("top_k", std::numeric_limits<int32_t>::max()).dump(), 200},
      {"top_k -1", chat, chat_with("top_k", -1).dump(), 400, "top_k"},
      {"seed int64 min", chat, chat_with("seed", std::numeric_limits<int64_t>::min()).dump(), 200},
      {"seed int64 max", chat, chat_with("seed", std::numeric_limits<int64_t>::max()).dump(), 200},
      {"seed 2^64", chat, with("seed", "18446744073709551616"), 400, "seed"},
      {"n 2", chat, chat_with("n", 2).dump(), 400, "n"},
      // messages
      {"messages empty array", chat, json{{"messages", json::array()}}.dump(), 400, "messages"},
      {"messages missing", chat, json{{"max_tokens", 2}}.dump(), 400, "messages"},
      {"messages a string", chat, json{{"messages", "hi"}}.dump(), 400, "messages"},
      {"content empty", chat, messages_of("").dump(), 200},
      {"content number", chat, messages_of(7).dump(), 400, "messages[0].content"},
      {"content image part", chat, messages_of(json::array({json{{"type", "image_url"}}})).dump(), 400,
       "messages[0].content[0].type"},
      {"content invalid UTF-8", chat, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\xfe\"}]}", 400},
      {"content with NUL", chat, messages_of(std::string("a\0b", 3)).dump(), 200},
      {"content longer than the context", chat, messages_of(std::string(20 * kCtx, 'x')).dump(), 400,
       "messages"},
      {"content of 512 KiB words", chat,
       messages_of([] {
         std::string s;
         while (s.size() < (512u << 10)) s += "word ";
         return s;
       }())
           .dump(),
       400, "messages"},
      {"role unknown", chat,
       json{{"messages", json::array({json{{"role", "wizard"}, {"content", "x"}}})}}.dump(), 400,
       "messages[0].role"},
      {"role number", chat, json{{"messages", json::array({json{{"role", 1}, {"content", "x"}}})}}.dump(),
       400, "messages[0].role"},
      // stop, stream, unknown fields
      {"stop 4 strings", chat, chat_with("stop", json::array({"a", "b", "c", "d"})).dump(), 200},
      {"stop 5 strings", chat, chat_with("stop", json::array({"a", "b", "c", "d", "e"})).dump(), 400, "stop"},
      {"stop empty string", chat, chat_with("stop", "").dump(), 400, "stop"},
      {"stop number", chat, chat_with("stop", 3).dump(), 400, "stop"},
      {"stream string", chat, chat_with("stream", "yes").dump(), 400, "stream"},
      {"unknown fields", chat, chat_with("frobnicate", json{{"deep", json::array({1, 2, 3})}}).dump(), 200},
      // the body itself
      {"body empty", chat, "", 400},
      {"body not JSON", chat, "{\"messages\": [", 400},
      {"body a JSON array", chat, "[1,2,3]", 400},
      {"body nested 100000 deep", chat, std::string(100000, '[') + std::string(100000, ']'), 400},
      {"unknown field nested 100000 deep", chat,
       with("deep", std::string(100000, '[') + std::string(100000, ']')), 200},
      // /v1/completions
      {"prompt empty", comp, json{{"prompt", ""}}.dump(), 400, "prompt"},
      {"prompt number", comp, json{{"prompt", 1}}.dump(), 400, "prompt"},
      {"prompt ok, max_tokens 1", comp, json{{"prompt", "once upon"}, {"max_tokens", 1}}.dump(), 200},
      {"prompt longer than the context", comp, json{{"prompt", std::string(20 * kCtx, 'y')}}.dump(), 400,
       "prompt"},
  };
  return v;
}

TEST(ServeBounds, EveryFieldAtAndPastItsBoundsGetsItsStatusAndNever5xx) {
  RecordProperty("falsification_id", "FALSIFY-SERVE-ABUSE-FIELD-BOUNDS");
  ServerProcess server(dense_model_path(), {"--ctx", std::to_string(kCtx), "--parallel", "1"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto c = server.client();
  StatusTally tally;
  for (const Case& k : cases()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c->Post(k.path.c_str(), k.body, "application/json");
    const int status = r ? r->status : -1;
    tally.add(status, seconds_since(t0));
    EXPECT_EQ(status, k.status) << k.name << ": " << (r ? r->body.substr(0, 300) : "no response");
    if (!r) continue;
    const json j = json::parse(r->body, nullptr, false);
    if (status == 400) {
      ASSERT_TRUE(j.contains("error")) << k.name << ": " << r->body.substr(0, 300);
      if (*k.param != '\0') {
        const json& param = j["error"]["param"];
        EXPECT_EQ(param.is_string() ? param.get<std::string>() : "(none)", k.param)
            << k.name << ": " << r->body;
      }
    } else if (status == 200) {
      EXPECT_TRUE(j.contains("choices")) << k.name << ": " << r->body.substr(0, 300);
      if (std::string(k.name) == "max_tokens 1") {
        EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 1);
      }
    }
  }
  EXPECT_EQ(tally.failures(), 0) << tally.summary();
  expect_healthy_and_idle(server);
  std::printf("[figures] bounds: %s\n", tally.summary().c_str());
  RecordProperty("bounds", tally.summary());
}

}  // namespace
}  // namespace popper::testing
