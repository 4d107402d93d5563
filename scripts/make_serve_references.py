#!/usr/bin/env python3
"""Make the `popper bench` corpus with llama.cpp reference continuations (issue 5, V1_004).

Reads the task list falsifiers/fixtures/serve/tasks.jsonl (id, messages, max_tokens, optional
chat_template_kwargs), builds the tiny synthetic qwen3moe model with `popper synth` (deterministic
bytes), and for each task:
  1. renders the messages with the model's own tokenizer.chat_template through jinja2, as
     transformers' apply_chat_template does (an independent renderer: Popper's is C++),
  2. tokenizes the text with llama.cpp's tokenizer (special tokens parsed),
  3. runs llama.cpp greedily (argmax, ties to the lowest id) until an end-of-generation token
     (llama_vocab_is_eog) or max_tokens,
  4. records the continuation's token ids, its text (the bytes decoded as UTF-8 with U+FFFD for
     ill-formed sequences, as the server sends them), the prompt token count and finish_reason.
Writes falsifiers/fixtures/serve/tiny-qwen3moe-<quant>.corpus.json keyed by the GGUF's sha256,
for --quant q4_k_m (the seed's quantisation; default) and f32.

Needs llama_cpp (llama-cpp-python) and jinja2 importable, e.g. with the reference venv:
  PYTHONPATH=/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages \\
    /work/venv-ref/bin/python scripts/make_serve_references.py --popper build/harness/popper [--quant f32]
(the PYTHONPATH entry only supplies jinja2 when the venv lacks it; numpy and llama_cpp come from
the venv).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny.files import sha256  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "falsifiers", "fixtures", "serve")
N_CTX = 1024


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def render(template, messages, kwargs):
    import jinja2.sandbox
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            enable_thinking=kwargs.get("enable_thinking", True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--popper", required=True, help="the popper binary (for `popper synth`)")
    ap.add_argument("--tasks", default=os.path.join(FIXTURES, "tasks.jsonl"))
    ap.add_argument("--quant", default="q4_k_m", choices=["q4_k_m", "q8_0", "f32"])
    ap.add_argument("--out", help="default: falsifiers/fixtures/serve/tiny-qwen3moe-<quant>.corpus.json")
    args = ap.parse_args()
    model = f"tiny-qwen3moe-{args.quant}"
    synth = ["--arch", "qwen3moe", "--preset", "tiny", "--quant", args.quant, "--seed", "0"]
    out_path = args.out or os.path.join(FIXTURES, f"{model}.corpus.json")

    import jinja2
    import llama_cpp
    import numpy as np

    with open(args.tasks, encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{model}.gguf")
        subprocess.run([args.popper, "synth", *synth, "-o", path], check=True, capture_output=True)
        digest = sha256(path)
        llm = llama_cpp.Llama(model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_threads=1, logits_all=True,
                              seed=0, verbose=False)
        template = llm.metadata["tokenizer.chat_template"]
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        out_tasks = []
        for task in tasks:
            text = render(template, task["messages"], task.get("chat_template_kwargs", {}))
            prompt = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            assert len(prompt) + task["max_tokens"] <= N_CTX, task["id"]
            llm.reset()
            llm.eval(prompt)
            tokens, finish = [], "length"
            while len(tokens) < task["max_tokens"]:
                row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
                tok = int(np.argmax(row))
                if tok in eog:
                    finish = "stop"
                    break
                tokens.append(tok)
                if len(tokens) < task["max_tokens"]:
                    llm.eval([tok])
            data = llm.detokenize(tokens, special=True) if tokens else b""
            entry = dict(task)
            entry["expected"] = {"prompt_tokens": len(prompt), "tokens": tokens,
                                 "text": data.decode("utf-8", errors="replace"), "finish_reason": finish}
            out_tasks.append(entry)
            print(f"{task['id']}: {len(prompt)} prompt tokens -> {len(tokens)} tokens ({finish})", file=sys.stderr)
        del llm
    doc = {"generator": "scripts/make_serve_references.py", "model": model, "synth": synth, "sha256": digest,
           "reference": {"engine": "llama.cpp", "llama_cpp_python": llama_cpp.__version__,
                         "template_renderer": f"jinja2 {jinja2.__version__}", "sampling": "greedy (argmax)",
                         "kv_type": "f16", "n_ctx": N_CTX, "eog_ids": eog},
           "tasks": out_tasks}
    write_atomic(out_path, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"{out_path}: {len(out_tasks)} tasks, sha256 {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
