#!/usr/bin/env python3
"""Makes the tokenizer and chat-template fixtures from independent references.

  falsifiers/fixtures/tokenizer/goldens.json       token ids from llama.cpp's tokenizer
                                                   (llama-cpp-python, vocab_only) on the
                                                   synthetic tiny (2048) and full (151936) vocabs
  falsifiers/fixtures/tokenizer/chat_goldens.json  the Qwen3 chat template rendered by jinja2 the
                                                   way transformers renders it

Run with the reference venv, giving a built `popper` binary (it writes the GGUFs):
  /work/venv-ref/bin/python scripts/make_tokenizer_goldens.py build/harness/popper [tokens|chat]
(default both; `tokens` needs llama_cpp, `chat` needs jinja2 and gguf).
Texts that are not valid UTF-8 are left out: llama.cpp turns each invalid byte into U+FFFD
while Popper keeps the byte (tokenizer_test checks those round trips instead).
"""
import json
import os
import random
import subprocess
import sys
import tempfile


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "falsifiers", "fixtures", "tokenizer")

TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll like it; we've been there and they're right: it's the best place we'd seen.",
    "IT'S DON'T WE'LL I'M 'S 'x '",
    "abc123def 4567 89",
    "3.14159 1e-6 0x7f 1,000,000 2025-11-25",
    "x = foo(bar);\n",
    "def tokenize(text, vocab):\n    return [vocab[w] for w in text.split()]\n",
    "int main() {\n\treturn 0;\n}\r\n",
    "   leading spaces",
    "trailing spaces   ",
    "a  b   c    d",
    "\n\n\nnewlines\n\n",
    "\r\n\r\nwindows\r\nlines\r\n",
    " \t \n \t\n  x",
    "tabs\tand\t\tmore\ttabs",
    "日本語のテキスト",
    "中文文本，还有标点。",
    "한국어 텍스트",
    "Ελληνικά και русский текст",
    "العربية ١٢٣ والأرقام",
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "combining e\u0301 a\u030a n\u0303 and नि",
    "cafe\u0301!",
    "NBSP\u00a0here and ideographic\u3000space",
    "info\u001cseparator\u001fcontrols",
    "Roman Ⅻ fractions ½ ¾ superscript ²",
    "!!! ??? ... --- *** ;;;",
    " !!\n\nx",
    "(parenthesised) [bracketed] {braced} <angled>",
    "path/to/file.txt C:\\Windows\\System32 https://example.com/a?b=c&d=e",
    "SELECT name, count(*) FROM users WHERE id > 10;",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "<think>reasoning</think>answer<|endoftext|>",
    "<|im_end|><|im_start|><|endoftext|>",
    "not special: <|im_star|> <think <|unknown|>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "The model reads text as a sequence of tokens and writes an answer.",
    "",
    " ",
    "\n",
]
# Random letter soup reaches the synthetic merges (ids far above the trained ones), so the goldens
# also pin the rank order of merges no English text would use. Fixed seed: stable fixtures.
_rng = random.Random(20251125)
TEXTS += ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 .,;'-_/+=\n")
                  for _ in range(120)) for _ in range(8)]

# Texts also tokenized with special=False (control tokens as plain text, user-defined still whole).
PLAIN_TEXTS = [
    "<|im_start|>user\nhi<|im_end|>",
    "<think>x</think><|endoftext|>",
]

VOCABS = [
    (2048, ["--arch", "qwen3", "--preset", "tiny", "--quant", "f32"]),
    (151936, ["--arch", "qwen3moe", "--preset", "30b-a3b", "--layers", "1", "--quant", "q4_k_m"]),
]

CHAT_CASES = [
    ([{"role": "user", "content": "Hi"}], True, True),
    ([{"role": "user", "content": "Hi"}], False, True),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], True, False),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
      {"role": "assistant", "content": "<think>\nfirst reasoning\n</think>\n\nA1"},
      {"role": "user", "content": "Q2"}], True, True),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>\nwhy\n</think>\n\nA"}], False, True),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], False, True),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A", "reasoning_content": "\nR\n"}], False, True),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "calling"},
      {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
      {"role": "system", "content": "late"}], True, True),
    ([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "\n\nplain\n"},
      {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
      {"role": "assistant", "content": "<think>t</think>done"}], True, False),
    ([{"role": "system", "content": "multi\nline\n"}, {"role": "user", "content": "  spaced  "},
      {"role": "assistant", "content": "<think>\n\n</think>\n\nok"}, {"role": "user", "content": "again"}], True, False),
]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def render_jinja(template, messages, add_generation_prompt, enable_thinking):
    # As transformers' apply_chat_template renders it.
    import jinja2.sandbox
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            enable_thinking=enable_thinking)


def synth(popper, tmp, n_vocab, args):
    path = os.path.join(tmp, f"vocab{n_vocab}.gguf")
    subprocess.run([popper, "synth", *args, "-q", "-o", path], check=True)
    return path


def make_token_goldens(popper):
    import llama_cpp
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_vocab, args in VOCABS:
            path = synth(popper, tmp, n_vocab, args)
            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            assert llm.n_vocab() == n_vocab, (llm.n_vocab(), n_vocab)
            for special, texts in ((True, TEXTS), (False, PLAIN_TEXTS)):
                for text in texts:
                    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
                    cases.append({"n_vocab": n_vocab, "special": special, "text": text, "ids": ids})
            del llm
    write_atomic(os.path.join(OUT_DIR, "goldens.json"), json.dumps({
        "generator": "scripts/make_tokenizer_goldens.py",
        "reference": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp tokenizer, vocab_only)",
        "cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(cases)} tokenizer cases")


def make_chat_goldens(popper):
    import gguf
    import jinja2
    with tempfile.TemporaryDirectory() as tmp:
        path = synth(popper, tmp, *VOCABS[0])
        field = gguf.GGUFReader(path).fields["tokenizer.chat_template"]
        template = bytes(field.parts[field.data[0]]).decode("utf-8")
    chat = []
    for messages, add_gen, thinking in CHAT_CASES:
        chat.append({"messages": messages, "add_generation_prompt": add_gen, "enable_thinking": thinking,
                     "rendered": render_jinja(template, messages, add_gen, thinking)})
    write_atomic(os.path.join(OUT_DIR, "chat_goldens.json"), json.dumps({
        "generator": "scripts/make_tokenizer_goldens.py",
        "reference": f"jinja2 {jinja2.__version__}, ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks)",
        "template": template, "cases": chat}, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(chat)} chat cases")


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in ("tokens", "chat")):
        sys.exit("usage: make_tokenizer_goldens.py PATH/TO/popper [tokens|chat]")
    popper = os.path.abspath(sys.argv[1])
    what = sys.argv[2] if len(sys.argv) == 3 else "both"
    os.makedirs(OUT_DIR, exist_ok=True)
    if what in ("tokens", "both"):
        make_token_goldens(popper)
    if what in ("chat", "both"):
        make_chat_goldens(popper)


if __name__ == "__main__":
    main()
