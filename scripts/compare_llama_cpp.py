#!/usr/bin/env python3
"""Side-by-side decode/prefill speed: Popper vs llama.cpp on the same GGUF and thread count.

A measuring tool, not part of the build or tests. llama.cpp comes from llama-cpp-python (pip,
in a throwaway venv: `python3 -m venv /tmp/ref && /tmp/ref/bin/pip install llama-cpp-python`).

  /tmp/ref/bin/python scripts/compare_llama_cpp.py --model models/30b-a3b.gguf --threads 2

Both engines decode --tokens greedy tokens after the same prompt; each is run --runs times
after one warm-up (so the model is in the page cache) and the median is printed.
"""
import argparse
import re
import statistics
import subprocess
import sys
import time


def run_llama_cpp(model, threads, prompt, n_tokens):
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                n_batch=512, verbose=False)
    tokens = llm.tokenize(prompt.encode(), add_bos=False)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    for _ in range(n_tokens):
        llm.eval([llm.sample(temp=0.0)])
    t2 = time.perf_counter()
    return len(tokens) / (t1 - t0), n_tokens / (t2 - t1)


def run_popper(popper, model, threads, prompt, n_tokens):
    out = subprocess.run([popper, "generate", "--model", model, "--prompt", prompt, "--max-tokens",
                          str(n_tokens + 1), "--threads", str(threads)],
                         capture_output=True, text=True, errors="replace", check=True)
    m = re.search(r"prefill .*\(([\d.]+) tok/s\), decode .*\(([\d.]+) tok/s\)", out.stdout + out.stderr)
    if not m:
        sys.exit(f"compare: no timing line from popper generate:\n{out.stdout}{out.stderr}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--popper", default="build/harness/popper")
    ap.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog")
    a = ap.parse_args()

    results = {}
    for name, fn in [("popper", lambda: run_popper(a.popper, a.model, a.threads, a.prompt, a.tokens)),
                     ("llama.cpp", lambda: run_llama_cpp(a.model, a.threads, a.prompt, a.tokens))]:
        fn()  # warm-up: page cache, llama.cpp's weight repacking
        runs = [fn() for _ in range(a.runs)]
        results[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    print(f"model {a.model}, {a.threads} threads, {a.tokens} decode tokens, median of {a.runs} runs")
    print(f"{'engine':<10} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for name, (pp, tg) in results.items():
        print(f"{name:<10} {pp:>14.2f} {tg:>13.2f}")
    print(f"decode ratio popper/llama.cpp: {results['popper'][1] / results['llama.cpp'][1]:.2f}")


if __name__ == "__main__":
    main()
