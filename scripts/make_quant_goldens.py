#!/usr/bin/env python3
"""Writes falsifiers/fixtures/quant/*.bin: golden (de)quantisation results from gguf-py
(llama.cpp's own Python package, an implementation independent of ours), for quant_test.

Run with the reference venv:  /work/venv-ref/bin/python scripts/make_quant_goldens.py

File layouts (little endian):
  <type>.dequant.bin  u32 n_blocks, u32 block_bytes, block bytes, f32 expected[n_blocks * block_size]
  q8_0.quant.bin      u32 n_values, f32 input[n_values], expected Q8_0 block bytes
  <type>.ggml_ref.bin u32 n_values, f32 input[n_values], expected block bytes from ggml's own
                      quantize_row_<type>_ref (libggml-base through ctypes; written only when
                      GGML_BASE_LIB names that library, e.g. one built by llama-cpp-python)
"""
import ctypes
import os
import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

OUT = Path(__file__).resolve().parent.parent / "falsifiers" / "fixtures" / "quant"
N_BLOCKS = 8


def random_blocks(qtype, rng):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    # fp16 scale fields get sane values: random bits would include NaN and inf.
    def put_f16(col):
        vals = rng.uniform(-0.05, 0.05, size=N_BLOCKS).astype(np.float16)
        raw[:, col:col + 2] = vals.view(np.uint8).reshape(N_BLOCKS, 2)
    if qtype in (T.Q4_K, T.Q5_K):
        put_f16(0)
        put_f16(2)
    elif qtype == T.Q6_K:
        put_f16(type_size - 2)
    elif qtype == T.Q8_0:
        put_f16(0)
    elif qtype == T.F16:  # block size 1: 256 values, one "block" each
        raw = rng.normal(size=256).astype(np.float16).view(np.uint8).reshape(256, 2)
    elif qtype == T.BF16:
        f = rng.normal(size=256).astype(np.float32).view(np.uint32)
        raw = (f >> 16).astype(np.uint16).view(np.uint8).reshape(256, 2)
    return raw


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260101)
    names = {T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K", T.Q8_0: "q8_0", T.F16: "f16", T.BF16: "bf16"}
    for qtype, name in names.items():
        blocks = random_blocks(qtype, rng)
        expected = quants.dequantize(blocks, qtype).astype(np.float32).reshape(-1)
        with open(OUT / f"{name}.dequant.bin", "wb") as f:
            f.write(struct.pack("<II", blocks.shape[0], blocks.shape[1]))
            f.write(blocks.tobytes())
            f.write(expected.astype("<f4").tobytes())
    # Q8_0 quantisation, with exact halves (roundf ties away from zero) in the last block.
    x = rng.normal(size=16 * 32).astype(np.float32)
    x[-32:] = np.arange(-16, 16, dtype=np.float32) + 0.5
    x[-32] = -127.0  # scale exactly 1, so the halves stay halves
    q = quants.quantize(x.reshape(1, -1), T.Q8_0)
    with open(OUT / "q8_0.quant.bin", "wb") as f:
        f.write(struct.pack("<I", x.size))
        f.write(x.astype("<f4").tobytes())
        f.write(q.tobytes())
    if os.environ.get("GGML_BASE_LIB"):
        ggml_ref_goldens(os.environ["GGML_BASE_LIB"], rng)


def ggml_ref_goldens(lib_path, rng):
    lib = ctypes.CDLL(lib_path)
    sizes = {"q4_K": 144, "q5_K": 176, "q6_K": 210, "q8_K": 292, "q8_0": 34}
    block = {"q8_0": 32}
    # Gaussian rows at three scales plus a row with outliers and a zero block: 24 super-blocks.
    x = rng.normal(size=24 * 256).astype(np.float32)
    x[0:2048] *= 1e-3
    x[2048:4096] *= 1e3
    x[4096 + 17] = 40.0
    x[4096 + 300] = -55.0
    x[5120:5376] = 0.0
    for name, type_size in sizes.items():
        fn = getattr(lib, f"quantize_row_{name}_ref")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        n_blocks = x.size // block.get(name, 256)
        out = np.zeros(n_blocks * type_size, dtype=np.uint8)
        fn(x.ctypes.data, out.ctypes.data, x.size)
        if name == "q8_K":  # ggml leaves an all-zero block's bsums unwritten; they are zero
            out = out.reshape(n_blocks, type_size)
            for b in range(n_blocks):
                if not x[b * 256:(b + 1) * 256].any():
                    out[b, 260:] = 0
            out = out.reshape(-1)
        with open(OUT / f"{name}.ggml_ref.bin", "wb") as f:
            f.write(struct.pack("<I", x.size))
            f.write(x.astype("<f4").tobytes())
            f.write(out.tobytes())


if __name__ == "__main__":
    main()
