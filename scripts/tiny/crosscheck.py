"""Compare our GGUF with the one llama.cpp's own converter makes from the same HF directory.

Runs convert_hf_to_gguf.py (--outtype bf16) on the export's HF directory, then checks that our
file has every metadata key the converter wrote with the same value (general.* naming keys
excepted: they derive from the directory name), and the same tensors with the same types,
shapes and bytes. The converter only recognises pre-tokenizers by hashing a known
tokenizer's output, and ours is new: its pre-tokenizer lookup is answered with "qwen2" (the
Split regex is Qwen2's, tiny/tokenizer.py); and Qwen2Model.set_vocab's sentencepiece attempt
is answered with the FileNotFoundError it meets when sentencepiece is installed (there is no
tokenizer.model) instead of an ImportError when it is not. Everything else is the converter's.
"""
import os
import subprocess
import sys

import numpy as np

# Keys whose value depends on the directory or tool, not the model.
NAMING = {"general.name", "general.basename", "general.size_label", "general.finetune", "general.version"}

RUNNER = r"""
import sys
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[1:]
sys.path.insert(0, {root!r})
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
def no_sentencepiece(self, *args, **kwargs):
    raise FileNotFoundError("no tokenizer.model")  # what it finds; the import alone fails here
base.TextModel._set_vocab_sentencepiece = no_sentencepiece
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""


def run_converter(llama_cpp_dir, hf_dir, out_path):
    code = RUNNER.format(root=llama_cpp_dir)
    cmd = [sys.executable, "-c", code, hf_dir, "--outtype", "bf16", "--outfile", out_path]
    r = subprocess.run(cmd, cwd=llama_cpp_dir, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed:\n{r.stderr[-3000:]}")


def fields(reader):
    out = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        out[name] = f.contents()
    return out


def compare(ours_path, theirs_path):
    import gguf

    ours, theirs = gguf.GGUFReader(ours_path), gguf.GGUFReader(theirs_path)
    fo, ft = fields(ours), fields(theirs)
    problems = []
    for k, v in ft.items():
        if k in NAMING:
            continue
        if k not in fo:
            problems.append(f"missing key {k} (converter: {str(v)[:80]})")
        elif fo[k] != v:
            problems.append(f"key {k}: ours {str(fo[k])[:80]}, converter {str(v)[:80]}")
    extra = sorted(set(fo) - set(ft) - NAMING)
    to = {t.name: t for t in ours.tensors}
    tt = {t.name: t for t in theirs.tensors}
    for n, t in tt.items():
        if n not in to:
            problems.append(f"missing tensor {n}")
            continue
        a = to[n]
        if a.tensor_type != t.tensor_type or list(a.shape) != list(t.shape):
            problems.append(f"tensor {n}: ours {a.tensor_type.name} {list(a.shape)}, converter {t.tensor_type.name} {list(t.shape)}")
        elif not np.array_equal(np.asarray(a.data).view(np.uint8), np.asarray(t.data).view(np.uint8)):
            problems.append(f"tensor {n}: bytes differ")
    problems += [f"extra tensor {n}" for n in sorted(set(to) - set(tt))]
    return problems, extra, len(ft), len(tt)


def crosscheck(llama_cpp_dir, hf_dir, ours_path, tmp_path):
    run_converter(llama_cpp_dir, hf_dir, tmp_path)
    try:
        return compare(ours_path, tmp_path)
    finally:
        os.remove(tmp_path)
