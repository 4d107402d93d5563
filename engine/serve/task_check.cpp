#include "engine/serve/task_check.h"

namespace popper::serve {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

std::string parse_task_answer(std::string_view reply) {
  constexpr std::string_view kThinkEnd = "</think>";
  if (const size_t at = reply.rfind(kThinkEnd); at != std::string_view::npos) {
    reply.remove_prefix(at + kThinkEnd.size());
  }
  std::string out;
  bool pending_space = false;
  for (const char c : reply) {
    if (is_blank(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

bool task_answer_matches(std::string_view reply, std::string_view answer) {
  return parse_task_answer(reply) == answer;
}

}  // namespace popper::serve
