#!/usr/bin/env python3
"""llama.cpp's quantisation-quality figures on the trained models, for
contracts/quantization-quality-v1.yaml (falsifiers/quant_quality_test.cpp):

  falsifiers/fixtures/quant/heldout.txt       the perplexity text: every held-out task of
                                               falsifiers/fixtures/trained/tasks.json as the chat
                                               transcript the models were trained on (prompt and
                                               right answer), one after another
  falsifiers/fixtures/quant/quality.json      per trained model (keyed by the source file's sha256)
                                               and file type: the quantised file's sha256 (popper
                                               quantize's, checked equal to llama-quantize's),
                                               llama-perplexity --kl-divergence's figures against
                                               the BF16 source on the same tokens Popper scores, and
                                               llama.cpp's held-out task accuracy on popper
                                               quantize's file and on the source (its drop, and the
                                               drop's standard error over the paired tasks)
  falsifiers/fixtures/quant/quality.log       this run: byte comparison with llama-quantize tensor
                                               by tensor, the llama.cpp load check (llama-cpp-python
                                               plays every held-out task on popper quantize's file),
                                               Popper's perplexity figures beside llama.cpp's,
                                               quantize timings

The transcripts hold the chat markup as special tokens (what the models were trained on).
llama-perplexity reads special-token text as plain text, so its base run cannot make those
tokens; the base file is made here instead, in llama-perplexity's own format, from llama.cpp's
logits (llama-cpp-python on the BF16 source, f16 KV cache, chunks of N_CTX from an empty cache)
coded with its 16-bit formula, and llama-perplexity --kl-divergence scores each quantised file
against it (it takes the tokens from the file). The falsifier runs `popper perplexity
--parse-special --kl-base <BF16 GGUF>` on the same text; `popper tokenize`'s tokens of it are
checked equal to llama.cpp's here.

Task accuracy is scripts/llama_cpp_tasks.py's (greedy llama-cpp-python, f16 KV cache, answers
parsed as Popper's bench parses them), run on the BF16 source and on popper quantize's files.

Run with the reference venv after building Popper and llama.cpp's tools (see make_quant_fixtures.py):
  /work/venv-ref/bin/python scripts/make_quant_quality.py [--trained-dir DIR]
Rerun whenever the trained models change (this one command regenerates every figure): the
falsifier is inconclusive on files whose sha256 the fixture does not hold.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_quant_fixtures as mqf  # noqa: E402  (shared helpers: tools, parsers, digests)

ROOT = mqf.ROOT
OUT_DIR = ROOT / "falsifiers" / "fixtures" / "quant"
TEXT = OUT_DIR / "heldout.txt"
N_CTX = 512
# One thread for llama.cpp: on a shared, loaded machine two ggml threads spend most of their time
# waiting on each other at every op's barrier (the figures do not depend on the thread count).
THREADS = 1
TYPES = ["q8_0", "q4_k_m"]  # the ones the contract holds to llama.cpp


def transcript(task):
    """Qwen3's non-thinking chat form, as scripts/train_tiny.py trains on it."""
    user = task["messages"][-1]["content"]
    return (f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            f"{task['answer']}<|im_end|>\n")


def encode_record(logits):
    """llama-perplexity's log_softmax(n_vocab, logits, log_prob, tok): the 16-bit base record, in
    float32 where it computes in float (expf summed in double)."""
    import numpy as np
    l = logits.astype(np.float32)
    max_logit = np.float32(l.max())
    min_logit = np.float32(max(np.float32(l.min()), np.float32(max_logit - np.float32(16))))
    sum_exp = float(np.exp((l - max_logit).astype(np.float32)).astype(np.float64).sum())
    log_sum_exp = np.float32(np.log(sum_exp))
    min_log_prob = np.float32(np.float32(min_logit - max_logit) - log_sum_exp)
    scale = np.float32(np.float32(max_logit - min_logit) / np.float32(65535))
    nv = 2 * ((len(l) + 1) // 2) + 4
    rec = np.zeros(nv, dtype=np.uint16)
    rec[0:4] = np.array([scale, min_log_prob], dtype=np.float32).view(np.uint16)
    if scale != 0:
        inv = np.float32(np.float32(1) / scale)
        codes = np.rint((inv * (l - min_logit)).astype(np.float32))
        rec[4:4 + len(l)] = np.where(l > min_logit, codes, 0).astype(np.uint16)
    return rec


def llama_base_file(src, text, n_ctx, out):
    """Writes llama-perplexity's --kl-divergence-base file for `text` (special tokens parsed) from
    llama.cpp's logits on the BF16 source. Returns the tokens."""
    import llama_cpp
    import numpy as np
    llm = llama_cpp.Llama(model_path=str(src), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=THREADS,
                          verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    with open(out, "wb") as f:
        f.write(b"_logits_")
        f.write(np.array([n_ctx, llm.n_vocab(), n_chunk], dtype="<i4").tobytes())
        f.write(np.array(tokens[:n_chunk * n_ctx], dtype="<i4").tobytes())
        for c in range(n_chunk):
            llm.reset()
            llm.eval(tokens[c * n_ctx:(c + 1) * n_ctx])
            scores = np.array(llm.scores[:n_ctx], dtype=np.float32)
            for i in range(first, n_ctx - 1):
                f.write(encode_record(scores[i]).tobytes())
    del llm
    return tokens[:n_chunk * n_ctx]


def llama_tasks(path, out_dir, committed=None):
    """llama.cpp's answers to the held-out tasks on `path` (scripts/llama_cpp_tasks.py), taken from
    the `committed` directory when it holds them for this very file (sha256)."""
    name = Path(path).name.removesuffix(".gguf") + ".json"
    doc = None
    if committed is not None and (Path(committed) / name).exists():
        doc = json.loads((Path(committed) / name).read_text())
        if doc.get("sha256") != mqf.sha256_file(path):
            doc = None
    if doc is None:
        mqf.run([sys.executable, ROOT / "scripts" / "llama_cpp_tasks.py", path, "--threads", THREADS, "--out", out_dir])
        doc = json.loads((Path(out_dir) / name).read_text())
    return {"accuracy_all": doc["accuracy_all"], "accuracy": doc["accuracy"],
            "correct": sorted(t["id"] for t in doc["tasks"] if t["correct"])}


def paired_drop(base, quant, task_ids):
    """The drop in accuracy from base to quant and its standard error over the paired tasks:
    d_i = right_base(i) - right_quant(i), mean and sqrt(var(d) / n)."""
    b, q = set(base["correct"]), set(quant["correct"])
    d = [(i in b) - (i in q) for i in task_ids]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return {"value": round(mean, 6), "uncertainty": round((var / n) ** 0.5, 6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--popper", default=str(ROOT / "build" / "harness" / "popper"))
    ap.add_argument("--llama-bin", default="/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin")
    ap.add_argument("--trained-dir", default=str(ROOT / "falsifiers" / "fixtures" / "trained"))
    args = ap.parse_args()
    popper, llama_bin, trained = Path(args.popper), Path(args.llama_bin), Path(args.trained_dir)
    log = mqf.log

    tasks = json.loads((trained / "tasks.json").read_text())["tasks"]
    TEXT.write_text("".join(transcript(t) for t in tasks))
    log(f"text: {TEXT.relative_to(ROOT)} from {len(tasks)} held-out tasks, {TEXT.stat().st_size} bytes")

    fixture = {"generator": "scripts/make_quant_quality.py", "text": str(TEXT.relative_to(ROOT)), "n_ctx": N_CTX,
               "parse_special": True, "tasks": "falsifiers/fixtures/trained/tasks.json",
               "tool": "llama-perplexity --kl-divergence-base / --kl-divergence (llama-cpp-python 0.3.36's llama.cpp)",
               "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for arch in ("qwen3moe", "qwen3"):
            src = trained / f"trained-{arch}-bf16.gguf"
            entry = {"source": f"falsifiers/fixtures/trained/{src.name}", "source_sha256": mqf.sha256_file(src),
                     "quants": {}}
            base = tmp / f"{arch}.kld"
            tokens = llama_base_file(src, TEXT.read_text(), N_CTX, base)
            ids = mqf.run([popper, "tokenize", "-m", src, "--text-file", TEXT, "--ids-only"]).strip()
            if [int(i) for i in ids.split(",")][:len(tokens)] != tokens:
                sys.exit(f"{src.name}: popper's tokens of {TEXT.name} differ from llama.cpp's")
            log(f"tokens {src.name}: {len(tokens)} scored-chunk tokens, popper's equal llama.cpp's")
            base_tasks = llama_tasks(src, tmp, trained / "llama_cpp")
            entry["llama_cpp_tasks"] = base_tasks
            log(f"tasks {src.name}: llama.cpp answers {base_tasks['accuracy_all']:.4f} {base_tasks['accuracy']}")
            for ftype in TYPES:
                ours, theirs = tmp / f"{arch}.{ftype}.popper.gguf", tmp / f"{arch}.{ftype}.llama.gguf"
                t0 = time.monotonic()
                mqf.run([popper, "quantize", src, ours, "--type", ftype, "-q", "-t", 2])
                t_popper = time.monotonic() - t0
                t0 = time.monotonic()
                mqf.run([llama_bin / "llama-quantize", src, theirs, mqf.FTYPES[ftype], 2])
                t_llama = time.monotonic() - t0
                a, b = mqf.tensor_digests(ours), mqf.tensor_digests(theirs)
                same = sum(1 for n in b if a.get(n) == b[n])
                identical = mqf.sha256_file(ours) == mqf.sha256_file(theirs)
                log(f"bytes {src.name} {ftype:7s}: file {'identical' if identical else 'DIFFERS'}, {same}/{len(b)} "
                    f"tensors identical; quantize {t_popper:.2f} s (popper, 2 threads) vs {t_llama:.2f} s "
                    f"(llama-quantize, 2 threads)")
                for n in b:
                    if a.get(n) != b[n]:
                        log(f"    {n}: llama {b[n]}, popper {a.get(n)}")
                q_tasks = llama_tasks(ours, tmp)
                drop = paired_drop(base_tasks, q_tasks, [t["id"] for t in tasks])
                log(f"load {src.name} {ftype:7s}: llama-cpp-python loads popper quantize's file and answers "
                    f"{q_tasks['accuracy_all']:.4f} of the held-out tasks (BF16 {base_tasks['accuracy_all']:.4f}; "
                    f"drop {drop['value']:.4f} ± {drop['uncertainty']:.4f}) {q_tasks['accuracy']}")
                kl = mqf.parse_kl(mqf.llama_perplexity(llama_bin, ours, ["--kl-divergence-base", base,
                                                                         "--kl-divergence"], TEXT, N_CTX, -1, THREADS))
                entry["quants"][ftype] = {"sha256": mqf.sha256_file(ours), "llama_quantize_identical": identical,
                                          "llama_cpp": kl, "llama_cpp_tasks": q_tasks, "llama_cpp_accuracy_drop": drop}
                log(f"kl {arch} {ftype:7s}: llama.cpp mean KLD {kl['kld']['value']:.6f} ± {kl['kld']['uncertainty']:.6f}, "
                    f"same top {100 * kl['same_top_p']['value']:.2f} ± {100 * kl['same_top_p']['uncertainty']:.2f} %, "
                    f"PPL(Q) {kl['ppl']['value']:.4f} vs base {kl['ppl_base']['value']:.4f} "
                    f"(Popper's figures: quant_quality_test's gtest properties)")
            fixture["models"][arch] = entry
    (OUT_DIR / "quality.json").write_text(json.dumps(fixture, indent=1) + "\n")
    (OUT_DIR / "quality.log").write_text("\n".join(mqf.LOG) + "\n")


if __name__ == "__main__":
    main()
