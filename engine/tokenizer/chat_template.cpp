#include "engine/tokenizer/chat_template.h"

#include <vector>

#include "engine/gguf/gguf_reader.h"

namespace popper {
namespace {

// Markers, as they appear in the jinja source (so "\\n" is backslash + n). See the header.
constexpr std::string_view kChatMlMarkers[] = {"<|im_start|>", "<|im_end|>", "add_generation_prompt",
                                               "<|im_start|>assistant\\n"};
constexpr std::string_view kQwen3Markers[] = {"enable_thinking", "<think>\\n\\n</think>\\n\\n", "reasoning_content",
                                              "last_query_index"};
constexpr std::string_view kCoderMarkers[] = {"<function=", "<parameter="};

template <size_t N>
std::vector<std::string_view> missing(std::string_view source, const std::string_view (&markers)[N]) {
  std::vector<std::string_view> out;
  for (std::string_view m : markers) {
    if (source.find(m) == std::string_view::npos) out.push_back(m);
  }
  return out;
}

std::string quote_list(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view s : items) out += str_cat(out.empty() ? "" : ", ", "'", s, "'");
  return out;
}

// Python's str.lstrip('\n') / rstrip('\n') / strip('\n').
std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view rstrip_nl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

bool is_tool_response(std::string_view s) {
  return s.starts_with("<tool_response>") && s.ends_with("</tool_response>");
}

void add_turn(std::string& out, std::string_view role, std::string_view content) {
  out += "<|im_start|>";
  out += role;
  out += '\n';
  out += content;
  out += "<|im_end|>\n";
}

// Qwen3 (thinking) template, without tools: follows Qwen3's tokenizer_config.json template.
Result<std::string> render_qwen3(std::span<const ChatMessage> messages, const ChatOptions& options) {
  std::string out;
  const int64_t n = static_cast<int64_t>(messages.size());
  if (messages[0].role == "system") add_turn(out, "system", messages[0].content);

  // The last user turn that is not a wrapped tool response: assistant turns after it keep their
  // reasoning, earlier ones lose it.
  int64_t last_query_index = n - 1;
  for (int64_t i = n - 1; i >= 0; --i) {
    if (messages[i].role == "user" && !is_tool_response(messages[i].content)) {
      last_query_index = i;
      break;
    }
  }

  for (int64_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      add_turn(out, m.role, m.content);
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      std::string_view reasoning;
      if (m.reasoning_content) {
        reasoning = *m.reasoning_content;
      } else if (const size_t first_close = content.find("</think>"); first_close != std::string_view::npos) {
        // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
        std::string_view before = rstrip_nl(content.substr(0, first_close));
        if (const size_t open = before.rfind("<think>"); open != std::string_view::npos) {
          before = before.substr(open + 7);
        }
        reasoning = lstrip_nl(before);
        // content.split('</think>')[-1].lstrip('\n')
        content = lstrip_nl(content.substr(content.rfind("</think>") + 8));
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query_index && (i == n - 1 || !reasoning.empty())) {
        out += "<think>\n";
        out += rstrip_nl(lstrip_nl(reasoning));
        out += "\n</think>\n\n";
        out += lstrip_nl(content);
      } else {
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out += m.content;
      out += "\n</tool_response>";
      if (i == n - 1 || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    } else if (m.role != "system") {
      return make_error("messages[", i, "].role: '", m.role,
                        "' is not rendered by the Qwen3 template (want system, user, assistant or tool)");
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

// Qwen3-Coder template, without tools: no thinking, assistant text kept as is.
Result<std::string> render_qwen3_coder(std::span<const ChatMessage> messages, const ChatOptions& options) {
  std::string out;
  size_t first = 0;
  if (messages[0].role == "system") {
    add_turn(out, "system", messages[0].content);
    first = 1;
  }
  const auto loop = messages.subspan(first);
  for (size_t i = 0; i < loop.size(); ++i) {
    const ChatMessage& m = loop[i];
    if (m.role == "tool") {
      if (i > 0 && loop[i - 1].role != "tool") out += "<|im_start|>user\n";
      out += "<tool_response>\n";
      out += m.content;
      out += "\n</tool_response>\n";
      if (i + 1 == loop.size() || loop[i + 1].role != "tool") out += "<|im_end|>\n";
    } else {
      add_turn(out, m.role, m.content);
    }
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace

const char* chat_template_family_name(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::kQwen3: return "qwen3";
    case ChatTemplateFamily::kQwen3Coder: return "qwen3-coder";
  }
  return "?";
}

Result<ChatTemplate> ChatTemplate::from_source(std::string_view source) {
  if (auto m = missing(source, kChatMlMarkers); !m.empty()) {
    return make_error("chat template is not a Qwen3 ChatML template: it lacks ", quote_list(m));
  }
  const auto qwen3_missing = missing(source, kQwen3Markers);
  if (qwen3_missing.empty()) return ChatTemplate(ChatTemplateFamily::kQwen3);
  const auto coder_missing = missing(source, kCoderMarkers);
  const bool has_think = source.find("<think>") != std::string_view::npos;
  if (coder_missing.empty() && !has_think) return ChatTemplate(ChatTemplateFamily::kQwen3Coder);
  return make_error("chat template is ChatML but not a known Qwen3 template: for qwen3 it lacks ",
                    quote_list(qwen3_missing), "; for qwen3-coder it ",
                    coder_missing.empty() ? std::string("has '<think>'") : "lacks " + quote_list(coder_missing));
}

Result<ChatTemplate> ChatTemplate::from_gguf(const GgufFile& file) {
  const GgufValue* v = file.find("tokenizer.chat_template");
  if (v == nullptr) return make_error(file.path(), ": tokenizer.chat_template: missing");
  const std::string* s = v->as_string();
  if (s == nullptr) {
    return make_error(file.path(), ": tokenizer.chat_template: want string, got ", gguf_value_type_name(v->type()));
  }
  auto t = from_source(*s);
  if (!t.ok()) return make_error(file.path(), ": tokenizer.chat_template: ", t.message());
  return t;
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, const ChatOptions& options) const {
  if (messages.empty()) return make_error("messages: at least one message is required");
  switch (family_) {
    case ChatTemplateFamily::kQwen3: return render_qwen3(messages, options);
    case ChatTemplateFamily::kQwen3Coder: return render_qwen3_coder(messages, options);
  }
  return make_error("unknown chat template family");
}

}  // namespace popper
