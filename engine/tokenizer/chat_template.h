// Chat templates of the Qwen3 family, rendered natively (no jinja engine).
//
// A GGUF carries its chat template as jinja source in tokenizer.chat_template. Popper does not
// interpret jinja: it recognises the template as one of the known Qwen3 family members by
// distinctive markers in the source and renders that member's ChatML with C++ that follows the
// template line by line. A template that matches no member is an error naming the markers it
// lacks, never a silent guess.
//
// Recognition (markers are substrings of the jinja source; "\n" below is the two characters
// backslash and n, as written inside the template's string literals):
//   ChatML, every member:  "<|im_start|>", "<|im_end|>", "add_generation_prompt",
//                          "<|im_start|>assistant\n"
//   kQwen3 (Qwen3 dense and MoE, with thinking): "enable_thinking", "<think>\n\n</think>\n\n",
//                          "reasoning_content", "last_query_index"
//   kQwen3Coder (Qwen3-Coder, XML tool calls, no thinking): "<function=", "<parameter=" and no
//                          "<think>"
// Tool definitions (`tools`) and assistant tool_calls are not rendered; messages with role
// "tool" are (they are plain text).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace popper {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  // An assistant turn's reasoning given separately (OpenAI-style reasoning_content); when unset,
  // the template takes it from a <think>...</think> block at the start of content.
  std::optional<std::string> reasoning_content;
};

struct ChatOptions {
  bool add_generation_prompt = true;  // end with "<|im_start|>assistant\n"
  bool enable_thinking = true;        // false: the prompt ends with an empty think block
};

enum class ChatTemplateFamily { kQwen3, kQwen3Coder };
const char* chat_template_family_name(ChatTemplateFamily family);

class ChatTemplate {
 public:
  // Recognises `source` (jinja text); error naming the missing markers otherwise.
  static Result<ChatTemplate> from_source(std::string_view source);
  // From the file's tokenizer.chat_template; error when the key is absent or not a string.
  static Result<ChatTemplate> from_gguf(const GgufFile& file);
  static ChatTemplate qwen3() { return ChatTemplate(ChatTemplateFamily::kQwen3); }

  ChatTemplateFamily family() const { return family_; }

  // Renders the prompt text (special tokens appear as text, e.g. "<|im_start|>"; tokenize it
  // with special-token parsing on). Errors: no messages; a role the template does not render.
  Result<std::string> render(std::span<const ChatMessage> messages, const ChatOptions& options = {}) const;

 private:
  explicit ChatTemplate(ChatTemplateFamily family) : family_(family) {}
  ChatTemplateFamily family_;
};

// The Qwen3 chat template exactly as Qwen3 checkpoints ship it (tokenizer_config.json of
// Qwen/Qwen3-0.6B ... Qwen3-30B-A3B): data, written into synthetic GGUFs.
std::string_view qwen3_chat_template_text();

}  // namespace popper
