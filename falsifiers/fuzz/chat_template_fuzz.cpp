// Fuzz target: chat template recognition and rendering (engine/tokenizer/chat_template.h).
//
// Input: fields separated by NUL bytes. Field 0 is a jinja template source, field 1 the options
// (bit 0 add_generation_prompt, bit 1 enable_thinking), each later field one message: its first
// byte picks the role (system, user, assistant, tool, or a role no template renders), bit 7 of
// it gives an assistant turn a separate reasoning_content (the next field), the rest is content.
//
// Properties: recognition accepts only a source holding every marker of the family it names;
// both families render any messages (the Qwen3 one refuses an unknown role with an error naming
// it); a rendered prompt holds every user and tool message verbatim and ends with the generation
// prompt asked for (Qwen3 with thinking off: the empty think block).
#include <string_view>
#include <vector>

#include "engine/tokenizer/chat_template.h"
#include "falsifiers/fuzz/fuzz_target.h"

namespace popper::fuzz {
namespace {

constexpr const char* kRoles[] = {"system", "user", "assistant", "tool", "narrator"};

std::vector<std::string_view> split_nul(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    size_t end = s.find('\0', start);
    out.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

void check_recognition(std::string_view source) {
  auto t = ChatTemplate::from_source(source);
  if (!t.ok()) {
    fuzz_require(t.message().rfind("chat template ", 0) == 0, "error says what it is about: " + t.message());
    return;
  }
  for (std::string_view m :
       {"<|im_start|>", "<|im_end|>", "add_generation_prompt", "<|im_start|>assistant\\n"})
    fuzz_require(contains(source, m), "a recognised template has the ChatML marker " + std::string(m));
  if (t->family() == ChatTemplateFamily::kQwen3) {
    for (std::string_view m : {"enable_thinking", "reasoning_content", "last_query_index"})
      fuzz_require(contains(source, m), "a qwen3 template has " + std::string(m));
  } else {
    fuzz_require(contains(source, "<function=") && !contains(source, "<think>"),
                 "a qwen3-coder template calls functions and does not think");
  }
}

void check_render(const ChatTemplate& tmpl, const std::vector<ChatMessage>& msgs, const ChatOptions& opts) {
  const bool qwen3 = tmpl.family() == ChatTemplateFamily::kQwen3;
  auto r = tmpl.render(msgs, opts);
  if (!r.ok()) {
    const bool empty = msgs.empty();
    bool unknown_role = false;
    for (const auto& m : msgs) unknown_role = unknown_role || m.role == kRoles[4];
    fuzz_require(empty || (qwen3 && unknown_role),
                 "render fails only for no messages or an unknown role: " + r.message());
    return;
  }
  const std::string& out = *r;
  for (const auto& m : msgs)
    if (m.role == "user" || m.role == "tool")
      fuzz_require(contains(out, m.content), "the prompt holds every " + m.role + " message verbatim");
  if (opts.add_generation_prompt) {
    const std::string_view tail = qwen3 && !opts.enable_thinking
                                      ? "<|im_start|>assistant\n<think>\n\n</think>\n\n"
                                      : "<|im_start|>assistant\n";
    fuzz_require(std::string_view(out).ends_with(tail), "the prompt ends with the generation prompt");
  }
}

// The smallest source recognised as Qwen3-Coder: every marker, nothing else.
const ChatTemplate& coder_template() {
  static const ChatTemplate t =
      ChatTemplate::from_source(
          "<|im_start|> <|im_end|> add_generation_prompt <|im_start|>assistant\\n <function= <parameter=")
          .value();
  return t;
}

void chat_template_one_input(Bytes data) {
  const std::vector<std::string_view> f =
      split_nul(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
  check_recognition(f[0]);
  ChatOptions opts;
  const uint8_t flags = f.size() > 1 && !f[1].empty() ? uint8_t(f[1][0]) : 3;
  opts.add_generation_prompt = flags & 1;
  opts.enable_thinking = flags & 2;
  std::vector<ChatMessage> msgs;
  for (size_t i = 2; i < f.size(); ++i) {
    const uint8_t tag = f[i].empty() ? 1 : uint8_t(f[i][0]);
    ChatMessage m;
    m.role = kRoles[(tag & 0x7f) % 5];
    m.content = std::string(f[i].empty() ? f[i] : f[i].substr(1));
    if ((tag & 0x80) && m.role == "assistant" && i + 1 < f.size()) m.reasoning_content = std::string(f[++i]);
    msgs.push_back(std::move(m));
  }
  check_render(ChatTemplate::qwen3(), msgs, opts);
  check_render(coder_template(), msgs, opts);
}

// Seeds: the Qwen3 template with each conversation of the chat goldens
// (falsifiers/fixtures/tokenizer/chat_goldens.json) in the input format above.
int chat_template_seeds(const std::string& dir) {
  const auto goldens = read_json_fixture("falsifiers/fixtures/tokenizer/chat_goldens.json");
  if (!goldens.is_object() || !goldens.contains("cases")) return -1;
  int n = 0;
  for (const auto& c : goldens["cases"]) {
    std::string seed(qwen3_chat_template_text());
    seed += '\0';
    seed +=
        char((c.value("add_generation_prompt", true) ? 1 : 0) | (c.value("enable_thinking", true) ? 2 : 0));
    for (const auto& m : c["messages"]) {
      const std::string role = m.value("role", "user");
      int tag = 1;
      for (int r = 0; r < 4; ++r)
        if (role == kRoles[r]) tag = r;
      const bool reasoning = m.contains("reasoning_content") && m["reasoning_content"].is_string();
      seed += '\0';
      seed += char(tag | (reasoning ? 0x80 : 0));
      seed += m.value("content", "");
      if (reasoning) seed += '\0' + m["reasoning_content"].get<std::string>();
    }
    if (!write_seed(dir, "golden-" + std::to_string(n++), seed)) return -1;
  }
  return n;
}

}  // namespace
}  // namespace popper::fuzz

POPPER_FUZZ_TARGET(chat_template, popper::fuzz::chat_template_one_input, popper::fuzz::chat_template_seeds);
