#!/usr/bin/env python3
"""Make the llama.cpp reference dumps for falsifiers/model_reference_test.cpp.

For each tiny synthetic model (built with `popper synth`, deterministic bytes), runs llama.cpp
(llama-cpp-python) on the same GGUF file: the fixed prompt, then 32 greedy steps, each step's
logits read with logits_all. Writes one compact JSON per model to
falsifiers/fixtures/reference/<arch>-<quant>.json keyed by the file's sha256:

  {"sha256": ..., "synth": [...], "llama_cpp_python": version, "n_vocab": ...,
   "prompt": [...], "kv_type": "f16", "tokens": [32 greedy ids],
   "logits": {"<step>": [n_vocab floats]} for a few steps}

Step s's logits are those after the prompt and the first s generated tokens. Greedy picks the
lowest id on ties (numpy argmax). The test needs only these files, never Python.

Usage: /work/venv-ref/bin/python scripts/make_reference_logits.py --popper build/harness/popper
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny.files import sha256  # noqa: E402

# F32 weights: both engines compute in float, so the comparison is tight. The quantised files
# (--all-quants) are dumped for investigation only: llama.cpp's activation quantisation does not
# bit-match Popper's, which moves logits by ~0.1-0.17 (as far as either engine sits from exact
# f64 math on dequantised weights), and on qwen3moe-q4_k_m that noise flips a router near-tie
# (layer 1, last prompt token, top-2/top-3 probability gap 1.7e-3), so top-1 differs at step 0.
MODELS = [("qwen3moe", "f32"), ("qwen3", "f32")]
ALL_QUANT_MODELS = MODELS + [("qwen3moe", "q8_0"), ("qwen3moe", "q4_k_m"), ("qwen3", "q4_k_m")]
PROMPT = [9, 151, 1033, 7, 412, 1999, 63, 800]  # fixed ids < 2048 (the tiny vocab)
STEPS = 32
LOGIT_STEPS = [0, 1, 8, 16, 31]


def run_llama(path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=128, n_batch=128, n_threads=1, logits_all=True,
                          seed=0, verbose=False)
    tokens = list(PROMPT)
    llm.reset()
    llm.eval(tokens)
    out, logits = [], {}
    for step in range(STEPS):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        if step in LOGIT_STEPS:
            logits[str(step)] = [float("%.7g" % v) for v in row]
        tok = int(np.argmax(row))
        out.append(tok)
        llm.eval([tok])
    return llama_cpp.__version__, out, logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--popper", required=True, help="the popper binary (for `popper synth`)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "falsifiers", "fixtures", "reference"))
    ap.add_argument("--all-quants", action="store_true", help="also dump the quantised models (not committed)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for arch, quant in (ALL_QUANT_MODELS if args.all_quants else MODELS):
            path = os.path.join(tmp, f"{arch}-{quant}.gguf")
            synth = ["--arch", arch, "--preset", "tiny", "--quant", quant, "--seed", "0"]
            subprocess.run([args.popper, "synth", *synth, "-o", path], check=True, capture_output=True)
            version, tokens, logits = run_llama(path)
            doc = {"sha256": sha256(path), "synth": synth, "llama_cpp_python": version, "n_vocab": len(logits["0"]),
                   "prompt": PROMPT, "kv_type": "f16", "tokens": tokens, "logits": logits}
            dst = os.path.join(args.out, f"{arch}-{quant}.json")
            with open(dst + ".tmp", "w") as f:
                json.dump(doc, f, separators=(",", ":"))
            os.replace(dst + ".tmp", dst)
            print(f"{dst}: tokens {tokens[:8]}...", file=sys.stderr)


if __name__ == "__main__":
    main()
