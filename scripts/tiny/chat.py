"""Chat rendering for the tiny models, from the one Qwen3 template Popper ships.

The template's jinja source is read out of engine/tokenizer/qwen3_template.cpp (the single
copy in the repository), rendered with jinja2 the way transformers' apply_chat_template does.
A training sequence is the generation prompt followed by the reply the model must produce: a
think block (the task's scratchpad, or empty) then the answer, ended by <|im_end|> — token for
token what the template renders for that assistant turn (reasoning_content = the scratchpad),
and what Popper and llama.cpp feed the model at inference.
"""
import os
import re

import jinja2

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATE_SOURCE = os.path.join(ROOT, "engine", "tokenizer", "qwen3_template.cpp")
REPLY_PREFIX = "<think>\n\n</think>\n\n"


def qwen3_template_text():
    with open(TEMPLATE_SOURCE, encoding="utf-8") as f:
        m = re.search(r'R"JINJA\((.*?)\)JINJA"', f.read(), re.S)
    if not m:
        raise SystemExit(f"{TEMPLATE_SOURCE}: no R\"JINJA(...)JINJA\" literal")
    return m.group(1)


_ENV = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
_TEMPLATE = None


def render(messages, add_generation_prompt=True, enable_thinking=None):
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = _ENV.from_string(qwen3_template_text())
    kw = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return _TEMPLATE.render(messages=messages, add_generation_prompt=add_generation_prompt, tools=None, **kw)


def prompt_text(user):
    """The generation prompt for one user turn (thinking not disabled: Popper's default)."""
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def reply_text(answer, thinking=""):
    """The assistant turn: '<think>\n' scratchpad '\n</think>\n\n' answer '<|im_end|>' (Qwen3's form;
    an empty scratchpad gives the template's empty think block, REPLY_PREFIX)."""
    return f"<think>\n{thinking}\n</think>\n\n{answer}<|im_end|>"


def self_check():
    """The string forms above equal the template's own rendering."""
    user, answer = "What is 1 + 2?", "3"
    assert render([{"role": "user", "content": user}]) == prompt_text(user)
    full = render([{"role": "user", "content": user}, {"role": "assistant", "content": answer}], False)
    assert full == prompt_text(user) + reply_text(answer) + "\n", repr(full)
    no_think = render([{"role": "user", "content": user}], True, enable_thinking=False)
    assert no_think == prompt_text(user) + REPLY_PREFIX
    thinking = "1+2+0=3 c0"
    msg = {"role": "assistant", "content": answer, "reasoning_content": thinking}
    full = render([{"role": "user", "content": user}, msg], False)
    assert full == prompt_text(user) + reply_text(answer, thinking) + "\n", repr(full)
