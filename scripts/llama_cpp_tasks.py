#!/usr/bin/env python3
"""llama.cpp's answers to the held-out tasks on a trained GGUF (BF16 or quantised by `popper
quantize`): the figures the quantised profiles' bounds come from, and the token dumps the
llama.cpp top-1 parity check reads.

For each task of falsifiers/fixtures/trained/tasks.json: the prompt is the chat template's
generation prompt (scripts/tiny/chat.py, equal to the GGUF's template), tokenized by llama.cpp, then greedy decoding with
llama-cpp-python (argmax of each step's logits, lowest id on ties; llama.cpp's default f16 KV
cache, as a user runs it) until <|im_end|> or max_tokens. The reply is scored by the
same rule as Popper's bench (tiny/tasks.py parse_answer).

Writes falsifiers/fixtures/trained/llama_cpp/<stem>.json keyed by the file's sha256:
  {"model": stem, "sha256", "llama_cpp_python", "kv_type", "accuracy": {family: rate},
   "accuracy_all", "tasks": [{"id", "prompt_tokens", "tokens": [greedy ids, ending with
   <|im_end|> when the model stopped], "correct"}]}
and appends one line per file to falsifiers/fixtures/trained/llama_cpp/accuracy.log.

Usage: /work/venv-ref/bin/python scripts/llama_cpp_tasks.py FILE.gguf [FILE.gguf ...]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny import chat, tasks  # noqa: E402
from tiny.files import sha256, write_json  # noqa: E402

ROOT = chat.ROOT
TRAINED = os.path.join(ROOT, "falsifiers", "fixtures", "trained")


def run(path, corpus, threads):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=threads, logits_all=True,
                          seed=0, verbose=False)
    eos = llm.token_eos()
    out, per = [], {}
    for t in corpus["tasks"]:
        user = t["messages"][0]["content"]
        prompt = llm.tokenize(chat.prompt_text(user).encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(prompt)
        ids = []
        for _ in range(t["max_tokens"]):
            tok = int(np.argmax(np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
            ids.append(tok)
            if tok == eos:
                break
            llm.eval([tok])
        reply = llm.detokenize(ids[:-1] if ids[-1] == eos else ids, special=True).decode("utf-8", "replace")
        ok = tasks.parse_answer(reply) == t["answer"]
        right, n = per.get(t["family"], (0, 0))
        per[t["family"]] = (right + ok, n + 1)
        out.append({"id": t["id"], "prompt_tokens": len(prompt), "tokens": ids, "correct": ok})
    acc = {f: round(r / n, 4) for f, (r, n) in per.items()}
    total = round(sum(r for r, _ in per.values()) / sum(n for _, n in per.values()), 4)
    return llama_cpp.__version__, acc, total, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(TRAINED, "llama_cpp"))
    args = ap.parse_args()
    with open(os.path.join(TRAINED, "tasks.json")) as f:
        corpus = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    for path in args.files:
        stem = os.path.basename(path).removesuffix(".gguf")
        t0 = time.time()
        version, acc, total, out = run(path, corpus, args.threads)
        doc = {"model": stem, "sha256": sha256(path), "llama_cpp_python": version, "kv_type": "f16",
               "accuracy": acc, "accuracy_all": total, "tasks": out}
        dest = os.path.join(args.out, f"{stem}.json")
        write_json(dest, doc)
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {stem} sha256 {doc['sha256'][:16]} llama-cpp-python {version}: "
                f"accuracy {total} {json.dumps(acc)} ({time.time() - t0:.0f} s)")
        with open(os.path.join(args.out, "accuracy.log"), "a") as f:
            f.write(line + "\n")
        print(line)


if __name__ == "__main__":
    main()
