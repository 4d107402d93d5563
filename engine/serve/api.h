// The OpenAI request shapes the server accepts, checked field by field.
//
// Parsing never throws and never guesses: a wrong type or value is an ApiError naming the field
// ("messages[1].content: want a string or an array of text parts, got number"), sent back as
// OpenAI's error object with status 400.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/sampler.h"
#include "engine/tokenizer/chat_template.h"

namespace popper::serve {

using json = nlohmann::json;

// An error returned to the client: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, "" for none
  std::string code;   // "" for none
  json to_json() const;
};

// What both endpoints run: a prompt (chat messages or raw text) and how to continue it.
struct CompletionRequest {
  bool chat = true;
  std::vector<ChatMessage> messages;  // chat
  ChatOptions chat_options;           // chat: enable_thinking from chat_template_kwargs
  std::string prompt;                 // /v1/completions
  std::optional<int64_t> max_tokens;  // unset: as many as the context allows
  SamplingParams sampling;            // temperature 1 unless given, as OpenAI's default
  bool seed_given = false;
  std::vector<std::string> stop;  // up to 4 non-empty strings
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string model;           // echoed back; any value accepted
};

inline constexpr size_t kMaxStopStrings = 4;  // OpenAI's limit

// Parse the body of POST /v1/chat/completions (chat = true) or /v1/completions.
// Returns the request, or the error for the first bad field.
std::optional<ApiError> parse_completion_request(const std::string& body, bool chat, CompletionRequest* out);

}  // namespace popper::serve
