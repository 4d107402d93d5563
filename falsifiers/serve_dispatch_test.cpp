// Falsifiers of contracts/qwen3-moe-serve-dispatch-v1.yaml V1_001..V1_003: `popper serve` on a
// qwen3moe model answers chat completions over real HTTP through the MoE FFN only; the dense path
// and its guard are never reached, and a negative control proves the guard check can fail.
#include <gtest/gtest.h>

#include <string>

#include "engine/gguf/gguf_reader.h"
#include "engine/model/ffn_guard.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "falsifiers/serve_test_util.h"

namespace popper::testing {
namespace {

constexpr int kMaxTokens = 12;
const std::string kDense = "popper_ffn_dispatch_total{path=\"dense\"}";
const std::string kMoe = "popper_ffn_dispatch_total{path=\"moe\"}";

json user_chat() {
  return json{{"messages", json::array({json{{"role", "system"}, {"content", "You are terse."}},
                                        json{{"role", "user"}, {"content", "Say hello to the MoE path."}}})},
              {"max_tokens", kMaxTokens},
              {"temperature", 0}};
}

TEST(ServeDispatch, ChatCompletionOnQwen3MoeReturns200WithAssistantMessage) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_001");
  const std::string model = moe_model_path();
  ServerProcess server(model);
  ASSERT_TRUE(server.ok()) << "server did not start:\n" << server.log();
  auto c = server.client();
  const json req = user_chat();
  auto r = post_json(*c, "/v1/chat/completions", req);
  ASSERT_TRUE(r) << "no HTTP response: " << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->get_header_value("Content-Type").find("application/json"), std::string::npos);
  const json body = json::parse(r->body);
  RecordProperty("response", r->body.substr(0, 2000));
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u) << body["id"];
  ASSERT_EQ(body["choices"].size(), 1u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  ASSERT_TRUE(choice["message"]["content"].is_string());
  const std::string content = choice["message"]["content"];
  EXPECT_FALSE(content.empty());
  const std::string finish = choice["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;

  // Usage against the model's own tokenizer and template, read here independently of the server.
  auto file = GgufFile::open(model);
  ASSERT_TRUE(file.ok()) << file.message();
  auto tok = Tokenizer::from_gguf(*file.value());
  ASSERT_TRUE(tok.ok()) << tok.message();
  auto tmpl = ChatTemplate::from_gguf(*file.value());
  ASSERT_TRUE(tmpl.ok()) << tmpl.message();
  std::vector<ChatMessage> msgs = {{"system", "You are terse.", std::nullopt},
                                   {"user", "Say hello to the MoE path.", std::nullopt}};
  auto prompt = tmpl.value().render(msgs);
  ASSERT_TRUE(prompt.ok()) << prompt.message();
  const json& usage = body["usage"];
  const int64_t n_prompt = int64_t(tok.value().encode(prompt.value()).size());
  EXPECT_EQ(usage["prompt_tokens"].get<int64_t>(), n_prompt);
  const int64_t n_completion = usage["completion_tokens"];
  EXPECT_GE(n_completion, 1);
  EXPECT_LE(n_completion, kMaxTokens);
  if (finish == "length") {
    EXPECT_EQ(n_completion, kMaxTokens);
  }
  EXPECT_EQ(usage["total_tokens"].get<int64_t>(), n_prompt + n_completion);
  RecordProperty("prompt_tokens", std::to_string(n_prompt));
  RecordProperty("completion_tokens", std::to_string(n_completion));
}

// Per-path counters, before and after one chat request, for one model.
struct DispatchDelta {
  std::string arch_info;
  double dense = 0, moe = 0;
};
DispatchDelta dispatch_delta(const std::string& model) {
  DispatchDelta d;
  ServerProcess server(model);
  if (!server.ok()) {
    ADD_FAILURE() << "server did not start:\n" << server.log();
    return d;
  }
  auto c = server.client();
  auto before = get_metrics(*c);
  auto r = post_json(*c, "/v1/chat/completions", user_chat());
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : httplib::to_string(r.error()));
  auto after = get_metrics(*c);
  d.dense = after[kDense] - before[kDense];
  d.moe = after[kMoe] - before[kMoe];
  for (const auto& [k, v] : after) {
    if (k.rfind("popper_model_info", 0) == 0 && v == 1) d.arch_info = k;
  }
  return d;
}

TEST(ServeDispatch, MetricsShowOnlyTheMatchingFfnPathPerArch) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_002");
  const DispatchDelta moe = dispatch_delta(moe_model_path());
  EXPECT_EQ(moe.arch_info, "popper_model_info{arch=\"qwen3moe\",ffn=\"moe\"}");
  EXPECT_GT(moe.moe, 0) << "the MoE FFN never ran for qwen3moe";
  EXPECT_EQ(moe.dense, 0) << "the dense FFN ran for qwen3moe";
  const DispatchDelta dense = dispatch_delta(dense_model_path());
  EXPECT_EQ(dense.arch_info, "popper_model_info{arch=\"qwen3\",ffn=\"dense\"}");
  EXPECT_GT(dense.dense, 0) << "the dense FFN never ran for qwen3";
  EXPECT_EQ(dense.moe, 0) << "the MoE FFN ran for qwen3";
  RecordProperty("qwen3moe_ffn_calls",
                 "moe=" + std::to_string(int64_t(moe.moe)) + " dense=" + std::to_string(int64_t(moe.dense)));
  RecordProperty("qwen3_ffn_calls", "moe=" + std::to_string(int64_t(dense.moe)) +
                                        " dense=" + std::to_string(int64_t(dense.dense)));
}

TEST(ServeDispatch, DenseGuardMessageNeverAppearsInTheMoeServerLog) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_003");
  ServerProcess server(moe_model_path());
  ASSERT_TRUE(server.ok()) << "server did not start:\n" << server.log();
  auto c = server.client();
  for (int i = 0; i < 3; ++i) {
    auto r = post_json(*c, "/v1/chat/completions", user_chat());
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : httplib::to_string(r.error()));
  }
  SseStream s = post_sse("127.0.0.1", server.port(), "/v1/chat/completions", [] {
    json b = user_chat();
    b["stream"] = true;
    return b;
  }());
  EXPECT_EQ(s.status, 200);
  const std::string log = server.log();
  EXPECT_NE(log.find("dispatch: arch qwen3moe"), std::string::npos) << log;
  EXPECT_EQ(log.find(kDenseFfnOnMoeGuardMessage), std::string::npos) << log;
  RecordProperty("server_log_excerpt", log.substr(0, 1500));
}

// Negative control: the same check on a server forced down the dense path must see the guard,
// and the request must fail instead of running the dense FFN on empty buffers.
TEST(ServeDispatch, DenseGuardMessageAppearsWhenTheDenseFfnIsForcedOntoMoe) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_003");
  ServerProcess server(moe_model_path(), {"--force-dense-ffn"});
  ASSERT_TRUE(server.ok()) << "server did not start:\n" << server.log();
  auto c = server.client();
  auto before = get_metrics(*c);
  auto r = post_json(*c, "/v1/chat/completions", user_chat());
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_NE(r->body.find(kDenseFfnOnMoeGuardMessage), std::string::npos) << r->body;
  auto after = get_metrics(*c);
  EXPECT_EQ(after[kDense] - before[kDense], 0) << "the dense FFN ran on MoE weights";
  const std::string log = server.log();
  const size_t at = log.find(kDenseFfnOnMoeGuardMessage);
  ASSERT_NE(at, std::string::npos) << "guard message missing from the negative control's log:\n" << log;
  const size_t line_start = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
  RecordProperty("guard_log_line", log.substr(line_start, log.find('\n', at) - line_start));
  // The server survives the refused request.
  auto health = c->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

}  // namespace
}  // namespace popper::testing
