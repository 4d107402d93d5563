// Unit falsifiers of the server's pieces that need no HTTP: UTF-8 repair for JSON output, stop
// strings found in a growing completion, and the request parser's defaults.
#include <gtest/gtest.h>

#include "engine/serve/api.h"
#include "engine/serve/task_check.h"
#include "engine/serve/text_util.h"

namespace popper::serve {
namespace {

TEST(SanitizeUtf8, ReplacesEachMaximalIllFormedSubpartOnceAndKeepsValidText) {
  const std::string r = "\xEF\xBF\xBD";
  struct Case {
    std::string in, want;
  };
  const std::vector<Case> cases = {
      {"plain ascii", "plain ascii"},
      {"caf\xC3\xA9 \xE4\xBD\xA0 \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE4\xBD\xA0 \xF0\x9F\x98\x80"},
      {"a\x80z", "a" + r + "z"},    // lone continuation byte
      {"\xE4\xBD", r},              // truncated 3-byte sequence: one subpart
      {"\xF0\x9F\x98", r},          // truncated 4-byte sequence
      {"\xE0\x80\x80", r + r + r},  // overlong: E0 needs A0..BF next
      {"\xED\xA0\x80", r + r + r},  // surrogate
      {"\xF5\x80", r + r},          // never a lead byte
      {"\xC3(", r + "("},           // lead byte then ASCII
      {"\xF0\x9F\x98"
       "a\xF0\x9F\x98\x80",
       r + "a\xF0\x9F\x98\x80"},
  };
  for (const Case& c : cases) EXPECT_EQ(sanitize_utf8(c.in), c.want) << c.in;
}

TEST(StopMatcher, CutsBeforeTheEarliestStopAndNeverEmitsAStopPrefix) {
  StopMatcher m({"END", "\n\n"});
  std::string emitted;
  for (const char* piece : {"Hello E", "N", "ding\n", "more E", "ND tail"}) {
    m.append(piece);
    emitted += m.take_ready();
    if (m.stopped()) break;
  }
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.text(), "Hello ENding\nmore ");
  EXPECT_EQ(emitted, "Hello ENding\nmore ");
}

TEST(StopMatcher, HeldBackPrefixIsReleasedWhenItDoesNotBecomeAStop) {
  StopMatcher m({"STOP"});
  m.append("abc ST");
  EXPECT_EQ(m.take_ready(), "abc ");
  m.append("ay");
  EXPECT_EQ(m.take_ready(), "STay");
  m.append("S");
  EXPECT_EQ(m.take_ready(), "");
  EXPECT_EQ(m.finish(), "S");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, StopSpanningManyPiecesIsFound) {
  StopMatcher m({"<end>"});
  std::string emitted;
  for (const char* piece : {"x<", "e", "n", "d", ">y"}) {
    m.append(piece);
    emitted += m.take_ready();
  }
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(emitted, "x");
}

TEST(TaskCheck, AnswerIsTheTextAfterTheThinkBlockWithBlanksCollapsed) {
  RecordProperty("falsification_id", "FALSIFY-QWEN3_MOE_SERVE_DISPATCH_V1_004");
  EXPECT_EQ(parse_task_answer("<think>\n\n</think>\n\n1 2  3\n"), "1 2 3");
  EXPECT_EQ(parse_task_answer("861"), "861");
  EXPECT_EQ(parse_task_answer("<think>\nsum is 8</think>\n\n <think></think> 42 "),
            "42");  // the last block counts
  EXPECT_EQ(parse_task_answer("<think>\n\n</think>\n\n"), "");
  EXPECT_TRUE(task_answer_matches("<think>\n\n</think>\n\n861", "861"));
  // Controls: a wrong, a partial and a run-on answer each fail.
  EXPECT_FALSE(task_answer_matches("<think>\n\n</think>\n\n862", "861"));
  EXPECT_FALSE(task_answer_matches("<think>\n\n</think>\n\n86", "861"));
  EXPECT_FALSE(task_answer_matches("<think>\n\n</think>\n\n861 861", "861"));
  EXPECT_FALSE(task_answer_matches("<think>\n861\n</think>\n\n", "861"));  // thinking is not answering
}

TEST(ParseRequest, DefaultsFollowOpenAi) {
  CompletionRequest r;
  auto e = parse_completion_request(R"({"messages":[{"role":"user","content":"hi"}]})", true, &r);
  ASSERT_FALSE(e.has_value()) << e->message;
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.seed_given);
  EXPECT_TRUE(r.chat_options.enable_thinking);
}

TEST(ParseRequest, ReadsEveryField) {
  CompletionRequest r;
  auto e = parse_completion_request(R"({"model":"m","messages":[{"role":"system","content":"s"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_completion_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,"seed":-3,"stop":["x","y"],
      "stream":true,"stream_options":{"include_usage":true},"chat_template_kwargs":{"enable_thinking":false}})",
                                    true, &r);
  ASSERT_FALSE(e.has_value()) << e->message;
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_EQ(r.sampling.seed, uint64_t(-3));
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_FALSE(r.chat_options.enable_thinking);
}

TEST(ParseRequest, ErrorObjectNamesTheField) {
  CompletionRequest r;
  auto e =
      parse_completion_request(R"({"messages":[{"role":"user","content":"hi"}],"top_k":"many"})", true, &r);
  ASSERT_TRUE(e.has_value());
  const auto j = e->to_json();
  EXPECT_EQ(j["error"]["param"], "top_k");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["message"], "top_k: want an integer, got string");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

}  // namespace
}  // namespace popper::serve
