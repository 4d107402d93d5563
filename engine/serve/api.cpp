#include "engine/serve/api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace popper::serve {
namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    case json::value_t::number_float:
      return "number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    default:
      return "value";
  }
}

ApiError field_error(const std::string& param, const std::string& message) {
  ApiError e;
  e.message = param + ": " + message;
  e.param = param;
  return e;
}

ApiError wrong_type(const std::string& param, const char* want, const json& got) {
  return field_error(param, std::string("want ") + want + ", got " + type_name(got));
}

// An integer field; floats with an integral value (2.0) are accepted, as JSON has one number type.
std::optional<ApiError> get_int(const json& v, const std::string& param, int64_t lo, int64_t hi,
                                int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      return field_error(param, "want an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                    "], got " + v.dump());
    }
    *out = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
             std::floor(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 9e15) {
    *out = int64_t(v.get<double>());
  } else {
    return wrong_type(param, "an integer", v);
  }
  if (*out < lo || *out > hi) {
    return field_error(param, "want an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + std::to_string(*out));
  }
  return std::nullopt;
}

// A float field (the sampler's parameters are floats): the range is checked on the number the
// client sent, so 1e-50 is a valid top_p in (0, 1]. Rounding to float is monotonic and the
// bounds are floats, so the float stays in [lo, hi]; an open bound is the caller's to keep
// (top_p clamps a value that rounds to 0 up to the smallest positive float).
std::optional<ApiError> get_number(const json& v, const std::string& param, double lo, double hi,
                                   bool lo_open, double* out) {
  if (!v.is_number()) return wrong_type(param, "a number", v);
  const double sent = v.get<double>();
  *out = double(float(sent));
  if (!std::isfinite(sent) || sent < lo || sent > hi || (lo_open && sent == lo)) {
    std::ostringstream range;
    range << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
    return field_error(param, "want a number in " + range.str() + ", got " + v.dump());
  }
  return std::nullopt;
}

// message.content: a string, or OpenAI's array of parts of which only text parts are accepted.
std::optional<ApiError> get_content(const json& v, const std::string& param, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return std::nullopt;
  }
  if (!v.is_array()) return wrong_type(param, "a string or an array of text parts", v);
  out->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = param + "[" + std::to_string(i) + "]";
    const json& part = v[i];
    if (!part.is_object()) return wrong_type(p, "an object", part);
    if (!part.contains("type") || part["type"] != "text") {
      return field_error(p + ".type", "only \"text\" parts are supported");
    }
    if (!part.contains("text") || !part["text"].is_string()) {
      return wrong_type(p + ".text", "a string", part.value("text", json()));
    }
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& body, CompletionRequest* out) {
  if (!body.contains("messages")) return field_error("messages", "required field missing");
  const json& msgs = body["messages"];
  if (!msgs.is_array()) return wrong_type("messages", "an array of messages", msgs);
  if (msgs.empty()) return field_error("messages", "want at least one message, got an empty array");
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string p = "messages[" + std::to_string(i) + "]";
    const json& m = msgs[i];
    if (!m.is_object()) return wrong_type(p, "an object", m);
    if (!m.contains("role")) return field_error(p + ".role", "required field missing");
    if (!m["role"].is_string()) return wrong_type(p + ".role", "a string", m["role"]);
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool") {
      return field_error(p + ".role", "want one of system, user, assistant, tool; got \"" + msg.role + "\"");
    }
    if (!m.contains("content")) return field_error(p + ".content", "required field missing");
    if (m["content"].is_null() && msg.role == "assistant") {
      msg.content.clear();  // an assistant turn that only called tools
    } else if (auto e = get_content(m["content"], p + ".content", &msg.content)) {
      return e;
    }
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
      if (!m["reasoning_content"].is_string()) {
        return wrong_type(p + ".reasoning_content", "a string", m["reasoning_content"]);
      }
      msg.reasoning_content = m["reasoning_content"].get<std::string>();
    }
    out->messages.push_back(std::move(msg));
  }
  if (body.contains("chat_template_kwargs")) {
    const json& kw = body["chat_template_kwargs"];
    if (!kw.is_object()) return wrong_type("chat_template_kwargs", "an object", kw);
    if (kw.contains("enable_thinking")) {
      if (!kw["enable_thinking"].is_boolean()) {
        return wrong_type("chat_template_kwargs.enable_thinking", "a boolean", kw["enable_thinking"]);
      }
      out->chat_options.enable_thinking = kw["enable_thinking"].get<bool>();
    }
  }
  return std::nullopt;
}

}  // namespace

json ApiError::to_json() const {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}};
}

std::optional<ApiError> parse_completion_request(const std::string& body_text, bool chat,
                                                 CompletionRequest* out) {
  *out = CompletionRequest{};
  out->chat = chat;
  out->sampling.temperature = 1.0f;
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::exception& e) {
    ApiError err;
    err.message = std::string("request body is not valid JSON: ") + e.what();
    return err;
  }
  if (!body.is_object()) {
    ApiError err;
    err.message = std::string("request body: want a JSON object, got ") + type_name(body);
    return err;
  }
  if (chat) {
    if (auto e = parse_messages(body, out)) return e;
  } else {
    if (!body.contains("prompt")) return field_error("prompt", "required field missing");
    if (!body["prompt"].is_string()) return wrong_type("prompt", "a string", body["prompt"]);
    out->prompt = body["prompt"].get<std::string>();
    if (out->prompt.empty()) return field_error("prompt", "want a non-empty string");
  }
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) return wrong_type("model", "a string", body["model"]);
    out->model = body["model"].get<std::string>();
  }
  // max_completion_tokens is the newer OpenAI name of max_tokens.
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (body.contains(name) && !body[name].is_null()) {
      int64_t v = 0;
      if (auto e = get_int(body[name], name, 1, std::numeric_limits<int32_t>::max(), &v)) return e;
      out->max_tokens = v;
    }
  }
  if (body.contains("temperature") && !body["temperature"].is_null()) {
    double v = 0;
    if (auto e = get_number(body["temperature"], "temperature", 0.0, 2.0, false, &v)) return e;
    out->sampling.temperature = float(v);
  }
  if (body.contains("top_p") && !body["top_p"].is_null()) {
    double v = 0;
    if (auto e = get_number(body["top_p"], "top_p", 0.0, 1.0, true, &v)) return e;
    // A positive double under float's range (1e-300) would round to 0, which the sampler
    // rejects (a 500): the smallest positive float keeps the same meaning, the top token only.
    out->sampling.top_p = std::max(float(v), std::numeric_limits<float>::denorm_min());
  }
  if (body.contains("top_k") && !body["top_k"].is_null()) {
    int64_t v = 0;
    if (auto e = get_int(body["top_k"], "top_k", 0, std::numeric_limits<int32_t>::max(), &v)) return e;
    out->sampling.top_k = v;
  }
  if (body.contains("seed") && !body["seed"].is_null()) {
    int64_t v = 0;
    if (auto e = get_int(body["seed"], "seed", std::numeric_limits<int64_t>::min(),
                         std::numeric_limits<int64_t>::max(), &v)) {
      return e;
    }
    out->sampling.seed = uint64_t(v);
    out->seed_given = true;
  }
  if (body.contains("n") && !body["n"].is_null()) {
    int64_t v = 0;
    if (auto e = get_int(body["n"], "n", 1, 1, &v)) return e;
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& s = body["stop"];
    if (s.is_string()) {
      out->stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      if (s.size() > kMaxStopStrings) {
        return field_error("stop", "want at most " + std::to_string(kMaxStopStrings) + " strings, got " +
                                       std::to_string(s.size()));
      }
      for (size_t i = 0; i < s.size(); ++i) {
        if (!s[i].is_string()) return wrong_type("stop[" + std::to_string(i) + "]", "a string", s[i]);
        out->stop.push_back(s[i].get<std::string>());
      }
    } else {
      return wrong_type("stop", "a string or an array of strings", s);
    }
    for (size_t i = 0; i < out->stop.size(); ++i) {
      if (out->stop[i].empty()) return field_error("stop", "stop strings must not be empty");
    }
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) return wrong_type("stream", "a boolean", body["stream"]);
    out->stream = body["stream"].get<bool>();
  }
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) return wrong_type("stream_options", "an object", so);
    if (so.contains("include_usage")) {
      if (!so["include_usage"].is_boolean()) {
        return wrong_type("stream_options.include_usage", "a boolean", so["include_usage"]);
      }
      out->include_usage = so["include_usage"].get<bool>();
    }
  }
  return std::nullopt;
}

}  // namespace popper::serve
