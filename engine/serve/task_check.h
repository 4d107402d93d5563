// Deciding a task-bench reply: the answer a model gave, parsed from its reply text.
//
// The trained models (scripts/train_tiny.py, scripts/tiny/tasks.py) answer in Qwen3's chat form:
// an (empty) think block, then the answer. The answer is the text after the last "</think>"
// with its blanks collapsed: runs of ASCII whitespace become one space, none at either end.
// Python's check (tasks.parse_answer) applies the same rule, so transformers, llama.cpp and
// Popper are scored alike.
#pragma once

#include <string>
#include <string_view>

namespace popper::serve {

// "<think>\n\n</think>\n\n1 2  3\n" -> "1 2 3"; a reply without a think block is parsed whole.
std::string parse_task_answer(std::string_view reply);

// parse_task_answer(reply) == answer.
bool task_answer_matches(std::string_view reply, std::string_view answer);

}  // namespace popper::serve
