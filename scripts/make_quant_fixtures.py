#!/usr/bin/env python3
"""Fixtures for the quantisation and perplexity falsifiers, from llama.cpp itself (its built
tools and llama-cpp-python), on Popper's tiny synthetic models:

  falsifiers/fixtures/quant/recipes.json         llama-quantize --dry-run's type for every tensor
                                                  of several layouts under Q8_0/Q4_K_M/Q5_K_M/Q6_K
  falsifiers/fixtures/quant/llama_quantize.json  digests of llama-quantize's outputs (whole file and
                                                  per tensor) on the tiny F32 synthetic models
  falsifiers/fixtures/eval/llama_perplexity.json llama-perplexity's PPL and --kl-divergence figures
                                                  on the same files, and the tokens it scored
  falsifiers/fixtures/quant/make_quant_fixtures.log  this run's log: the byte comparison with
                                                  `popper quantize` tensor by tensor, the llama.cpp
                                                  load checks, Popper's figures beside llama.cpp's

Run with the reference venv, after building Popper and llama.cpp's tools:
  /work/venv-ref/bin/python scripts/make_quant_fixtures.py \\
      --popper build/harness/popper --llama-bin /work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin

The layouts for the recipe fixture are written as sparse GGUF files (header and tensor table, data
holes), so llama-quantize --dry-run can plan the real 30B-A3B shapes without 120 GB on disk; it
reads only the header.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parent.parent
QUANT_DIR = ROOT / "falsifiers" / "fixtures" / "quant"
EVAL_DIR = ROOT / "falsifiers" / "fixtures" / "eval"
FTYPES = {"q8_0": "Q8_0", "q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}
PPL_TEXT = EVAL_DIR / "synthetic.txt"
PPL_CTX = 128
PPL_CHUNKS = 8

LOG = []


def log(*parts):
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    LOG.append(line)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout + r.stderr


# ---- layouts (names and shapes as llama.cpp's converter writes them) ------------------------------

def layout(name, arch, n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_expert=0, n_ff_exp=0,
           tied=False, synth=None):
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    t = [("token_embd.weight", [n_embd, n_vocab])]
    for il in range(n_layer):
        p = f"blk.{il}."
        t += [(p + "attn_norm.weight", [n_embd]), (p + "attn_q.weight", [n_embd, q_dim]),
              (p + "attn_k.weight", [n_embd, kv_dim]), (p + "attn_v.weight", [n_embd, kv_dim]),
              (p + "attn_output.weight", [q_dim, n_embd]), (p + "attn_k_norm.weight", [head_dim]),
              (p + "attn_q_norm.weight", [head_dim]), (p + "ffn_norm.weight", [n_embd])]
        if n_expert:
            t += [(p + "ffn_gate_inp.weight", [n_embd, n_expert]),
                  (p + "ffn_gate_exps.weight", [n_embd, n_ff_exp, n_expert]),
                  (p + "ffn_down_exps.weight", [n_ff_exp, n_embd, n_expert]),
                  (p + "ffn_up_exps.weight", [n_embd, n_ff_exp, n_expert])]
        else:
            t += [(p + "ffn_gate.weight", [n_embd, n_ff]), (p + "ffn_down.weight", [n_ff, n_embd]),
                  (p + "ffn_up.weight", [n_embd, n_ff])]
    t.append(("output_norm.weight", [n_embd]))
    if not tied:
        t.append(("output.weight", [n_embd, n_vocab]))
    d = dict(name=name, arch=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
             head_dim=head_dim, n_ff=n_ff, n_expert=n_expert, n_ff_exp=n_ff_exp, n_vocab=n_vocab,
             tensors=[{"name": n, "dims": dims, "type": "f32"} for n, dims in t])
    if synth:
        d["synth"] = synth
    return d


LAYOUTS = [
    # engine/synth/synth.cpp's presets
    layout("30b-a3b", "qwen3moe", 48, 2048, 32, 4, 128, 6144, 151936, 128, 768,
           synth={"arch": "qwen3moe", "preset": "30b-a3b"}),
    layout("tiny-qwen3moe", "qwen3moe", 4, 256, 4, 2, 64, 512, 2048, 8, 256,
           synth={"arch": "qwen3moe", "preset": "tiny"}),
    layout("tiny-qwen3", "qwen3", 4, 256, 4, 2, 64, 512, 2048, synth={"arch": "qwen3", "preset": "tiny"}),
    # Shapes of the kind the trained models have: 16 experts, 6 layers; a dense model with tied
    # embeddings (no output.weight) and 10 layers.
    layout("qwen3moe-16x-6l", "qwen3moe", 6, 256, 4, 2, 64, 512, 4096, 16, 256),
    layout("qwen3-tied-10l", "qwen3", 10, 256, 4, 2, 64, 768, 4096, tied=True),
]


def write_sparse_gguf(path, lay):
    w = gguf.GGUFWriter(str(path), lay["arch"])
    a = lay["arch"]
    w.add_block_count(lay["n_layer"])
    w.add_context_length(4096)
    w.add_embedding_length(lay["n_embd"])
    w.add_feed_forward_length(lay["n_ff"])
    w.add_head_count(lay["n_head"])
    w.add_head_count_kv(lay["n_head_kv"])
    w.add_key_length(lay["head_dim"])
    w.add_value_length(lay["head_dim"])
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    if lay["n_expert"]:
        w.add_expert_count(lay["n_expert"])
        w.add_expert_used_count(2)
        w.add_expert_feed_forward_length(lay["n_ff_exp"])
    w.add_file_type(0)
    total = 0
    for t in lay["tensors"]:
        nbytes = int(np.prod(t["dims"])) * 4
        w.add_tensor_info(t["name"], list(reversed(t["dims"])), np.dtype(np.float32), nbytes)
        total += (nbytes + 31) // 32 * 32
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate((size + 31) // 32 * 32 + total)


DRY_LINE = re.compile(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size =\s*[\d.]+ MiB(?: ->\s*[\d.]+ MiB \((\S+)\))?")


def recipes(llama_bin):
    out = {"generator": "scripts/make_quant_fixtures.py", "tool": "llama-quantize --dry-run", "layouts": []}
    with tempfile.TemporaryDirectory() as tmp:
        for lay in LAYOUTS:
            path = Path(tmp) / (lay["name"] + ".gguf")
            write_sparse_gguf(path, lay)
            lay = dict(lay)
            lay["llama_quantize"] = {}
            for ftype, tool_name in FTYPES.items():
                text = run([llama_bin / "llama-quantize", "--dry-run", path, tool_name])
                types = {}
                for m in DRY_LINE.finditer(text):
                    types[m.group(1)] = m.group(3) or m.group(2)
                if len(types) != len(lay["tensors"]):
                    sys.exit(f"{lay['name']} {ftype}: parsed {len(types)} of {len(lay['tensors'])} tensors:\n{text[-2000:]}")
                lay["llama_quantize"][ftype] = types
                counts = {}
                for v in types.values():
                    counts[v] = counts.get(v, 0) + 1
                log(f"recipe {lay['name']:18s} {ftype:7s}", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
            out["layouts"].append(lay)
    (QUANT_DIR / "recipes.json").write_text(json.dumps(out, indent=1) + "\n")


# ---- byte comparison, load checks, perplexity -----------------------------------------------------

def tensor_digests(path):
    r = gguf.GGUFReader(str(path))
    return {t.name: (t.tensor_type.name.lower(), hashlib.sha256(t.data.tobytes()).hexdigest()) for t in r.tensors}


def header_bytes(path):
    r = gguf.GGUFReader(str(path))
    start = min(int(t.data_offset) for t in r.tensors)
    with open(path, "rb") as f:
        return f.read(start)


def llama_load_check(path):
    """Loads the file in llama-cpp-python and decodes 8 greedy tokens from a fixed prompt."""
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False)
    toks = llm.tokenize(b"The quick brown fox jumps over", add_bos=False)
    out = []
    for t in llm.generate(toks, top_k=1, temp=0.0, reset=True):
        out.append(int(t))
        if len(out) == 8:
            break
    del llm
    return out


PPL_FINAL = re.compile(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)")
PPL_CHUNK = re.compile(r"\[(\d+)\]([\d.]+),")
KL_FIELDS = {
    "ppl": r"Mean PPL\(Q\)\s+:\s+([-\d.]+)\s*±\s*([-\d.]+)",
    "ppl_base": r"Mean PPL\(base\)\s+:\s+([-\d.]+)\s*±\s*([-\d.]+)",
    "ln_ppl_ratio": r"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s+:\s+([-\d.]+)\s*±\s*([-\d.]+)",
    "ppl_diff": r"Mean PPL\(Q\)-PPL\(base\)\s+:\s+([-\d.]+)\s*±\s*([-\d.]+)",
    "kld": r"Mean    KLD:\s+([-\d.]+)\s*±\s*([-\d.]+)",
    "kld_max": r"Maximum KLD:\s+([-\d.]+)",
    "kld_p99": r"99\.0%   KLD:\s+([-\d.]+)",
    "kld_median": r"Median  KLD:\s+([-\d.]+)",
    "delta_p_rms": r"RMS Δp    :\s+([-\d.]+)\s*±\s*([-\d.]+) %",
    "same_top_p": r"Same top p:\s+([-\d.]+)\s*±\s*([-\d.]+) %",
}


def parse_kl(text):
    out = {}
    for k, pat in KL_FIELDS.items():
        m = re.search(pat, text)
        if not m:
            sys.exit(f"llama-perplexity output lacks {k}:\n{text[-3000:]}")
        vals = [float(g) for g in m.groups()]
        if k in ("delta_p_rms", "same_top_p"):
            vals = [v / 100 for v in vals]
        out[k] = {"value": vals[0], "uncertainty": vals[1]} if len(vals) == 2 else vals[0]
    return out


# This llama.cpp's asynchronous logger loses the messages still queued when the process exits,
# which are exactly llama-perplexity's final figures. Under gdb, a pause at llama_backend_free
# (after the last message is queued) lets the log thread write them out.
GDB_SCRIPT = """set breakpoint pending on
break llama_backend_free
commands
silent
call (int)usleep(500000)
continue
end
run
"""


def gdb_drain():
    path = Path(tempfile.gettempdir()) / "popper-llama-log-drain.gdb"
    path.write_text(GDB_SCRIPT)
    return ["gdb", "-batch", "-nx", "-x", path, "--args"]


def llama_perplexity(llama_bin, model, extra, text=PPL_TEXT, n_ctx=PPL_CTX, chunks=PPL_CHUNKS, threads=2):
    text = run(gdb_drain() + [llama_bin / "llama-perplexity", "-m", model, "-f", text, "-c", n_ctx, "--chunks",
                            chunks, "-t", threads, "-b", n_ctx] + extra)
    if "[Inferior 1 (process" in text and "exited normally" not in text:
        sys.exit(f"llama-perplexity failed under gdb:\n{text[-3000:]}")
    return text


def popper_perplexity(popper, model, extra, text=PPL_TEXT, n_ctx=PPL_CTX, chunks=PPL_CHUNKS):
    return json.loads(run([popper, "perplexity", "-m", model, "-f", text, "-c", n_ctx, "--chunks", chunks,
                           "-t", 2, "--json", "-q"] + extra))


def compare_and_measure(popper, llama_bin):
    quant_fixture = {"generator": "scripts/make_quant_fixtures.py", "tool": "llama-quantize (llama-cpp-python 0.3.36's llama.cpp)",
                     "models": []}
    ppl_fixture = {"generator": "scripts/make_quant_fixtures.py", "tool": "llama-perplexity", "text": str(PPL_TEXT.relative_to(ROOT)),
                   "n_ctx": PPL_CTX, "chunks": PPL_CHUNKS, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for arch in ("qwen3moe", "qwen3"):
            f32 = tmp / f"tiny-{arch}-f32.gguf"
            run([popper, "synth", "--arch", arch, "--preset", "tiny", "--quant", "f32", "-o", f32, "-q"])
            entry = {"arch": arch, "synth": ["--arch", arch, "--preset", "tiny", "--quant", "f32"],
                     "input_sha256": sha256_file(f32), "outputs": {}}
            for ftype, tool_name in FTYPES.items():
                ours, theirs = tmp / f"{arch}.{ftype}.popper.gguf", tmp / f"{arch}.{ftype}.llama.gguf"
                run([popper, "quantize", f32, ours, "--type", ftype, "-q", "-t", 2])
                run([llama_bin / "llama-quantize", f32, theirs, tool_name, 2])
                a, b = tensor_digests(ours), tensor_digests(theirs)
                same = [n for n in b if a.get(n) == b[n]]
                differ = [n for n in b if a.get(n) != b[n]]
                whole = sha256_file(ours) == sha256_file(theirs)
                log(f"bytes tiny-{arch} {ftype:7s}: file {'identical' if whole else 'DIFFERS'}, header "
                    f"{'identical' if header_bytes(ours) == header_bytes(theirs) else 'DIFFERS'}, "
                    f"{len(same)}/{len(b)} tensors identical")
                for n in b:
                    log(f"    {n:32s} {b[n][0]:5s} {'same' if n in same else 'DIFFERENT (popper ' + str(a.get(n)) + ')'}")
                entry["outputs"][ftype] = {"sha256": sha256_file(theirs),
                                           "tensors": {n: {"type": t, "sha256": d} for n, (t, d) in b.items()}}
                # llama.cpp loads Popper's file and decodes from it as from its own.
                mine, ref = llama_load_check(ours), llama_load_check(theirs)
                log(f"load tiny-{arch} {ftype:7s}: llama-cpp-python loads popper's file; greedy {mine} "
                    f"({'same as' if mine == ref else 'DIFFERS from'} llama-quantize's file)")
            quant_fixture["models"].append(entry)

            if arch != "qwen3moe":
                continue
            # Perplexity and KL on the MoE model: llama-perplexity vs popper perplexity.
            text = llama_perplexity(llama_bin, f32, [])
            m = PPL_FINAL.search(text)
            chunks = [float(v) for _, v in PPL_CHUNK.findall(text)]
            base = tmp / "f32.kld"
            llama_perplexity(llama_bin, f32, ["--kl-divergence-base", base])
            raw = base.read_bytes()
            n_ctx, n_vocab, n_chunk = np.frombuffer(raw[8:20], dtype="<i4")
            tokens = np.frombuffer(raw[20:20 + 4 * n_ctx * n_chunk], dtype="<i4").tolist()
            ppl_fixture["tokens"] = tokens
            ppl_fixture["models"]["tiny-qwen3moe-f32"] = {"sha256": sha256_file(f32), "ppl": float(m.group(1)),
                                                          "ppl_uncertainty": float(m.group(2)), "chunk_ppl": chunks}
            ours = popper_perplexity(popper, f32, [])
            log(f"ppl tiny-qwen3moe-f32: llama-perplexity {m.group(1)} +/- {m.group(2)}, popper "
                f"{ours['ppl']['value']:.4f} +/- {ours['ppl']['uncertainty']:.5f}")
            for ftype in ("q8_0", "q4_k_m"):
                q = tmp / f"{arch}.{ftype}.llama.gguf"
                theirs = parse_kl(llama_perplexity(llama_bin, q, ["--kl-divergence-base", base, "--kl-divergence"]))
                ppl_fixture["models"][f"tiny-qwen3moe-{ftype}"] = {"sha256": sha256_file(q), "kl_base": "tiny-qwen3moe-f32",
                                                                   "kl": theirs}
                mine = popper_perplexity(popper, tmp / f"{arch}.{ftype}.popper.gguf", ["--kl-base", f32])["kl"]
                on_theirs = popper_perplexity(popper, tmp / f"{arch}.{ftype}.popper.gguf", ["--kl-base", base])["kl"]
                for label, k in (("llama-perplexity          ", theirs),
                                 ("popper (base: f32 GGUF)   ", {"ppl": mine["ppl"], "kld": {"value": mine["kld"]["mean"], "uncertainty": mine["kld"]["uncertainty"]}, "same_top_p": mine["same_top_p"]}),
                                 ("popper (base: llama file) ", {"ppl": on_theirs["ppl"], "kld": {"value": on_theirs["kld"]["mean"], "uncertainty": on_theirs["kld"]["uncertainty"]}, "same_top_p": on_theirs["same_top_p"]})):
                    log(f"kl tiny-qwen3moe-{ftype:7s} {label}: PPL(Q) {k['ppl']['value']:.4f}, mean KLD "
                        f"{k['kld']['value']:.6f} ± {k['kld']['uncertainty']:.6f}, same top "
                        f"{100 * k['same_top_p']['value']:.2f} ± {100 * k['same_top_p']['uncertainty']:.2f} %")
    (QUANT_DIR / "llama_quantize.json").write_text(json.dumps(quant_fixture, indent=1) + "\n")
    (EVAL_DIR / "llama_perplexity.json").write_text(json.dumps(ppl_fixture, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--popper", default=str(ROOT / "build" / "harness" / "popper"))
    ap.add_argument("--llama-bin", default="/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin")
    ap.add_argument("--only", choices=["recipes", "bytes"], help="make one part only")
    args = ap.parse_args()
    llama_bin = Path(args.llama_bin)
    if args.only in (None, "recipes"):
        recipes(llama_bin)
    if args.only in (None, "bytes"):
        compare_and_measure(Path(args.popper), llama_bin)
    (QUANT_DIR / "make_quant_fixtures.log").write_text("\n".join(LOG) + "\n")


if __name__ == "__main__":
    main()
