#!/usr/bin/env python3
"""llama.cpp's quantisation-quality figures on the trained models, for
contracts/quantization-quality-v1.yaml (falsifiers/quant_quality_test.cpp):

  falsifiers/fixtures/quant/heldout.txt       the perplexity text: every held-out task of
                                               falsifiers/fixtures/trained/tasks.json as the chat
                                               transcript the models were trained on (prompt and
                                               right answer), one after another
  falsifiers/fixtures/quant/quality.json      per trained model (keyed by the source file's sha256)
                                               and file type: the quantised file's sha256 (popper
                                               quantize's, checked equal to llama-quantize's) and
                                               llama-perplexity --kl-divergence's figures against
                                               the BF16 source, on the same tokens Popper scores
  falsifiers/fixtures/quant/quality.log       this run: byte comparison with llama-quantize tensor
                                               by tensor, llama.cpp load checks, Popper's figures
                                               beside llama.cpp's, quantize timings

The transcripts hold the chat markup as special tokens (what the models were trained on).
llama-perplexity reads special-token text as plain text, so its base run cannot make those
tokens; the base file is made here instead, in llama-perplexity's own format, from llama.cpp's
logits (llama-cpp-python on the BF16 source, f16 KV cache, chunks of N_CTX from an empty cache)
coded with its 16-bit formula, and llama-perplexity --kl-divergence scores each quantised file
against it (it takes the tokens from the file). Popper runs `popper perplexity --parse-special
--kl-base <BF16 GGUF>`; its tokens are checked equal to llama.cpp's.

Run with the reference venv after building Popper and llama.cpp's tools (see make_quant_fixtures.py):
  /work/venv-ref/bin/python scripts/make_quant_quality.py [--trained-dir DIR]
Rerun whenever the trained models change: the falsifier is inconclusive on files whose sha256
the fixture does not hold.
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
TYPES = ["q8_0", "q4_k_m", "q5_k_m", "q6_k"]


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
    llm = llama_cpp.Llama(model_path=str(src), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=2,
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


def file_tokens(path):
    import numpy as np
    raw = Path(path).read_bytes()
    n_ctx, _, n_chunk = np.frombuffer(raw[8:20], dtype="<i4")
    return np.frombuffer(raw[20:20 + 4 * n_ctx * n_chunk], dtype="<i4").tolist()


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
               "parse_special": True,
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
            popper_base = tmp / f"{arch}.popper.kld"
            mqf.popper_perplexity(popper, src, ["--parse-special", "--save-kl-base", popper_base], TEXT, N_CTX, -1)
            if file_tokens(popper_base) != tokens:
                sys.exit(f"{src.name}: popper's tokens of {TEXT.name} differ from llama.cpp's")
            log(f"tokens {src.name}: {len(tokens)} scored-chunk tokens, popper's equal llama.cpp's")
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
                greedy = mqf.llama_load_check(ours)
                log(f"load {src.name} {ftype:7s}: llama-cpp-python loads popper's file (greedy {greedy})")
                kl = mqf.parse_kl(mqf.llama_perplexity(llama_bin, theirs, ["--kl-divergence-base", base,
                                                                           "--kl-divergence"], TEXT, N_CTX, -1))
                entry["quants"][ftype] = {"sha256": mqf.sha256_file(theirs), "popper_identical": identical,
                                          "llama_cpp": kl}
                mine = mqf.popper_perplexity(popper, ours, ["--parse-special", "--kl-base", src], TEXT, N_CTX, -1)["kl"]
                log(f"kl {arch} {ftype:7s}: llama.cpp mean KLD {kl['kld']['value']:.6f} ± {kl['kld']['uncertainty']:.6f}, "
                    f"same top {100 * kl['same_top_p']['value']:.2f} ± {100 * kl['same_top_p']['uncertainty']:.2f} %, "
                    f"PPL(Q) {kl['ppl']['value']:.4f} vs base {kl['ppl_base']['value']:.4f} | popper mean KLD "
                    f"{mine['kld']['mean']:.6f} ± {mine['kld']['uncertainty']:.6f}, same top "
                    f"{100 * mine['same_top_p']['value']:.2f} %, PPL(Q) {mine['ppl']['value']:.4f} vs base "
                    f"{mine['ppl_base']['value']:.4f}")
            fixture["models"][arch] = entry
    (OUT_DIR / "quality.json").write_text(json.dumps(fixture, indent=1) + "\n")
    (OUT_DIR / "quality.log").write_text("\n".join(mqf.LOG) + "\n")


if __name__ == "__main__":
    main()
