// Falsifiers for engine/tokenizer/chat_template: Qwen3 ChatML rendered exactly as the jinja
// template renders it (hand-written expectations, plus fixtures/tokenizer/chat_goldens.json
// rendered by jinja2 from the template text by scripts/make_tokenizer_goldens.py), and
// templates outside the Qwen3 family rejected with a reason.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.h"
#include "engine/gguf/gguf_reader.h"
#include "engine/gguf/gguf_writer.h"
#include "engine/synth/vocab.h"
#include "engine/tokenizer/chat_template.h"

namespace popper {
namespace {

using Msgs = std::vector<ChatMessage>;

std::string render(const Msgs& m, ChatOptions o = {}, ChatTemplate t = ChatTemplate::qwen3()) {
  auto r = t.render(m, o);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : std::string();
}

TEST(ChatTemplate, SingleUserTurnWithGenerationPrompt) {
  RecordProperty("falsification_id", "CHAT-TEMPLATE-QWEN3");
  EXPECT_EQ(render({{"user", "Hi", {}}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ChatOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(render({{"user", "Hi", {}}}, no_prompt), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, ThinkingOffAddsEmptyThinkBlock) {
  ChatOptions o;
  o.enable_thinking = false;
  EXPECT_EQ(render({{"system", "Be brief.", {}}, {"user", "Hi", {}}}, o),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, MultiTurnStripsThinkingFromEarlierAssistantTurns) {
  const Msgs m = {{"system", "S", {}},
                  {"user", "Q1", {}},
                  {"assistant", "<think>\nfirst reasoning\n</think>\n\nA1", {}},
                  {"user", "Q2", {}}};
  EXPECT_EQ(render(m),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, AssistantTurnAfterLastQueryKeepsItsThinkBlock) {
  ChatOptions o;
  o.add_generation_prompt = false;
  EXPECT_EQ(render({{"user", "Q", {}}, {"assistant", "<think>\nwhy\n</think>\n\nA", {}}}, o),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nwhy\n</think>\n\nA<|im_end|>\n");
  // The last turn gets an (empty) think block even without reasoning; reasoning_content wins.
  EXPECT_EQ(render({{"user", "Q", {}}, {"assistant", "A", {}}}, o),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n");
  EXPECT_EQ(render({{"user", "Q", {}}, {"assistant", "A", std::string("\nR\n")}}, o),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n");
}

TEST(ChatTemplate, ToolTurnsAndLateSystemMessages) {
  const Msgs m = {{"user", "Q", {}},
                  {"assistant", "calling", {}},
                  {"tool", "r1", {}},
                  {"tool", "r2", {}},
                  {"system", "late", {}}};
  ChatOptions o;
  o.add_generation_prompt = false;
  EXPECT_EQ(render(m, o),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\ncalling<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n"
            "<|im_start|>system\nlate<|im_end|>\n");
}

TEST(ChatTemplate, BadMessagesAreErrors) {
  auto empty = ChatTemplate::qwen3().render({});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("at least one message"), std::string::npos);
  auto role = ChatTemplate::qwen3().render(Msgs{{"user", "a", {}}, {"narrator", "b", {}}});
  ASSERT_FALSE(role.ok());
  EXPECT_NE(role.message().find("messages[1].role: 'narrator'"), std::string::npos);
}

TEST(ChatTemplate, RecognisesTheSyntheticModelsTemplate) {
  GgufWriter w;
  add_tokenizer_metadata(w, build_synth_vocab(512));
  auto bytes = w.write_to_bytes();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse("synth.gguf", *bytes);
  ASSERT_TRUE(f.ok()) << f.message();
  auto t = ChatTemplate::from_gguf(**f);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->family(), ChatTemplateFamily::kQwen3);
}

TEST(ChatTemplate, RejectsTemplatesOutsideTheQwen3Family) {
  RecordProperty("falsification_id", "CHAT-TEMPLATE-UNKNOWN-REJECTED");
  // Llama 3 style: not ChatML at all.
  auto llama = ChatTemplate::from_source(
      "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}");
  ASSERT_FALSE(llama.ok());
  EXPECT_NE(llama.message().find("lacks '<|im_start|>'"), std::string::npos) << llama.message();
  // Qwen2.5 style: ChatML, but with a default system prompt and no thinking.
  auto qwen25 = ChatTemplate::from_source(
      "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}"
      "{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
      "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}");
  ASSERT_FALSE(qwen25.ok());
  EXPECT_NE(qwen25.message().find("'enable_thinking'"), std::string::npos) << qwen25.message();
  // The real template minus its thinking switch is no longer recognised.
  std::string edited(qwen3_chat_template_text());
  edited.replace(edited.find("enable_thinking"), 15, "enable_reasoner");
  edited.replace(edited.find("enable_thinking"), 15, "enable_reasoner");
  EXPECT_FALSE(ChatTemplate::from_source(edited).ok());
  EXPECT_TRUE(ChatTemplate::from_source(qwen3_chat_template_text()).ok());
}

TEST(ChatTemplate, Qwen3CoderFamilyHasNoThinkBlock) {
  const std::string coder =
      "{%- for message in loop_messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
      "{%- endfor %}<tool_call>\\n<function=example_function_name>\\n<parameter=example_parameter_1>"
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
  auto t = ChatTemplate::from_source(coder);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->family(), ChatTemplateFamily::kQwen3Coder);
  ChatOptions o;
  o.enable_thinking = false;
  EXPECT_EQ(render({{"system", "S", {}}, {"user", "Q", {}}, {"assistant", "<think>x</think>A", {}}, {"user", "Q2", {}}}, o, *t),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>x</think>A<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, MatchesJinjaRenderingsOfTheRealTemplate) {
  RecordProperty("falsification_id", "CHAT-TEMPLATE-JINJA-GOLDEN");
  auto text = read_file(std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/tokenizer/chat_goldens.json");
  ASSERT_TRUE(text.ok()) << text.message();
  const auto j = nlohmann::json::parse(*text);
  ASSERT_EQ(j.at("template"), std::string(qwen3_chat_template_text())) << "fixture made from another template";
  int checked = 0;
  for (const auto& c : j.at("cases")) {
    Msgs msgs;
    for (const auto& m : c.at("messages")) {
      ChatMessage cm{m.at("role"), m.at("content"), {}};
      if (m.contains("reasoning_content")) cm.reasoning_content = m.at("reasoning_content").get<std::string>();
      msgs.push_back(cm);
    }
    ChatOptions o;
    o.add_generation_prompt = c.at("add_generation_prompt");
    o.enable_thinking = c.at("enable_thinking");
    EXPECT_EQ(render(msgs, o), c.at("rendered").get<std::string>()) << "case " << checked;
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

}  // namespace
}  // namespace popper
