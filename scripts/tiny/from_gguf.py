"""Read a trained model back out of its GGUF: the tokenizer and the weights.

A run can start from a committed model instead of from random weights (train --init-from):
the committed BF16 file is the only copy of a finished run's weights that outlives the machine
it trained on. The tokenizer is rebuilt from the file's own vocabulary and merges (retraining
it would give other merges whenever the task generators changed since), with the normaliser
and pre-tokenizer of tiny/tokenizer.py; the weights go through export.gguf_names in reverse, so a model loaded here and exported again gives the same tensors bit for bit.
"""
import numpy as np
import torch
from tokenizers import Tokenizer, models

import gguf

from . import export
from . import tokenizer as tiny_tokenizer

_CONTROL = 3  # llama.cpp's token_type: 3 control (special), 4 user-defined (<think> pair)


def _field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        raise SystemExit(f"{reader.path}: no key {key}")
    return f.contents()


def tokenizer_from_gguf(path):
    """The tokenizer the file was made with: BPE vocabulary and merges as stored, then the
    ADDED tokens in tiny/tokenizer.py's order, each checked to land on the file's id."""
    r = gguf.GGUFReader(path)
    tokens = _field(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(r, "tokenizer.ggml.merges")]
    n_bpe = len(tokens) - len(tiny_tokenizer.ADDED)
    added = tokens[n_bpe:]
    if added != [text for text, _ in tiny_tokenizer.ADDED]:
        raise SystemExit(f"{path}: the last {len(added)} tokens are {added}, not tiny/tokenizer.py's ADDED")
    types = _field(r, "tokenizer.ggml.token_type")
    for i, (text, special) in enumerate(tiny_tokenizer.ADDED):
        if (types[n_bpe + i] == _CONTROL) != special:
            raise SystemExit(f"{path}: token {text!r} has type {types[n_bpe + i]}, want special={special}")
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens[:n_bpe])}, merges=merges))
    tiny_tokenizer.set_pipeline(tok)
    tiny_tokenizer.add_tokens(tok)
    for i, text in enumerate(tokens):
        if tok.token_to_id(text) != i:
            raise SystemExit(f"{path}: token {i} {text!r} rebuilt as id {tok.token_to_id(text)}")
    return tok


def gguf_config(path):
    """(arch, n_layer, dense n_ff) of the file: what tiny/model.make_config needs beyond the tokenizer."""
    r = gguf.GGUFReader(path)
    arch = _field(r, "general.architecture")
    if arch not in ("qwen3moe", "qwen3"):
        raise SystemExit(f"{path}: architecture {arch}, want qwen3moe or qwen3")
    return arch, int(_field(r, f"{arch}.block_count")), int(_field(r, f"{arch}.feed_forward_length"))


def _as_float32(t):
    data = np.asarray(t.data)
    if t.tensor_type == gguf.GGMLQuantizationType.F32:
        return data.astype(np.float32)
    if t.tensor_type == gguf.GGMLQuantizationType.BF16:
        bits = data.view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32)
    raise SystemExit(f"{t.name}: type {t.tensor_type.name}; --init-from takes the BF16/F32 files train_tiny writes")


@torch.no_grad()
def load_weights(model, path):
    """Sets every parameter of `model` from the file (the inverse of export.gguf_tensors)."""
    r = gguf.GGUFReader(path)
    got = {t.name: t for t in r.tensors}
    want = export.gguf_tensors(model)
    if set(got) != {n for n, _, _ in want}:
        raise SystemExit(f"{path}: tensors differ from the model's: {sorted(set(got) ^ {n for n, _, _ in want})[:6]}")
    state = model.state_dict()
    for name, target in state.items():
        src = [g for g, _ in export.gguf_names(name)]
        arrays = [_as_float32(got[g]) for g in src]
        value = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)  # gate, up halves
        if value.size != target.numel():
            raise SystemExit(f"{path}: {src} has {value.size} values, {name} wants {target.numel()}")
        target.copy_(torch.from_numpy(value.reshape(tuple(target.shape))))
    return len(state)


def _shared_with(hf_name, n_layer_src):
    """Whether a dense/MoE state-dict entry is one `load_attention` copies: the embedding, the final
    norm and head, and in each layer the source has, the attention block and both norms."""
    if hf_name in export.TOP_NAMES:
        return True
    parts = hf_name.split(".")
    return int(parts[2]) < n_layer_src and ".mlp." not in hf_name


@torch.no_grad()
def load_attention(model, path):
    """Sets `model`'s embedding, head and attention from a trained file of either arch (same
    tokenizer and attention shape), for the layers the file has; zeroes every FFN's output
    projection and the attention output of the layers it lacks, so the model starts as the
    file's attention path with nothing random added to the residual stream. The dense model
    never formed the lookup match from random weights (fixtures README, run r5); this starts
    it from a circuit that did. Returns the number of entries copied."""
    r = gguf.GGUFReader(path)
    got = {t.name: t for t in r.tensors}
    _, n_layer_src, _ = gguf_config(path)
    copied = 0
    for name, target in model.state_dict().items():
        if _shared_with(name, n_layer_src):
            (g, _), = export.gguf_names(name)
            if g not in got:
                raise SystemExit(f"{path}: no tensor {g} for {name}")
            value = _as_float32(got[g])
            if value.size != target.numel():
                raise SystemExit(f"{path}: {g} has {value.size} values, {name} wants {target.numel()}")
            target.copy_(torch.from_numpy(value.reshape(tuple(target.shape))))
            copied += 1
        elif name.endswith("mlp.down_proj.weight") or name.endswith("mlp.experts.down_proj") or name.endswith("self_attn.o_proj.weight"):
            target.zero_()
    return copied
