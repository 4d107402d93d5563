"""Export a trained tiny model to GGUF with the `gguf` package.

The file carries what llama.cpp's convert_hf_to_gguf.py writes for Qwen3ForCausalLM /
Qwen3MoeForCausalLM (conversion/qwen.py, conversion/base.py: TextModel.set_gguf_parameters,
Qwen2MoeModel, _set_vocab_gpt2, prepare_tensors), written here from those facts:
  general.{architecture, type, name, size_label, file_type, quantization_version}
  {arch}.{block_count, context_length, embedding_length, feed_forward_length,
          attention.head_count, attention.head_count_kv, rope.freq_base,
          attention.layer_norm_rms_epsilon, attention.key_length, attention.value_length}
  qwen3moe also: expert_count, expert_used_count, expert_feed_forward_length
  tokenizer.ggml.{model "gpt2", pre "qwen2", tokens, token_type, merges, bos/eos/padding
          _token_id, add_bos_token}, tokenizer.chat_template
Tensor types as the converter's --outtype bf16: norms and the router (ffn_gate_inp) F32,
every other matrix BF16. The HF directory written beside it (config, tokenizer files) is what
the converter itself reads, so scripts/train_tiny.py `crosscheck` can compare the two files.

The BF16 rounding is applied to the transformers model too (round_to_file_precision), so the
references are computed from exactly the weights in the file, in F32.
"""
import json
import os

import numpy as np
import torch

import gguf

from . import chat, tokenizer as tiny_tokenizer

ARCH = {"qwen3_moe": "qwen3moe", "qwen3": "qwen3"}


# HF name inside a layer -> (GGUF name inside blk.N., kept F32). The MoE experts (one 3-D
# gate_up_proj and down_proj per layer in transformers) are named in gguf_names.
LAYER_NAMES = {
    "input_layernorm.weight": ("attn_norm.weight", True),
    "post_attention_layernorm.weight": ("ffn_norm.weight", True),
    "self_attn.q_proj.weight": ("attn_q.weight", False),
    "self_attn.k_proj.weight": ("attn_k.weight", False),
    "self_attn.v_proj.weight": ("attn_v.weight", False),
    "self_attn.o_proj.weight": ("attn_output.weight", False),
    "self_attn.q_norm.weight": ("attn_q_norm.weight", True),
    "self_attn.k_norm.weight": ("attn_k_norm.weight", True),
    "mlp.gate_proj.weight": ("ffn_gate.weight", False),
    "mlp.up_proj.weight": ("ffn_up.weight", False),
    "mlp.down_proj.weight": ("ffn_down.weight", False),
    "mlp.gate.weight": ("ffn_gate_inp.weight", True),  # router: F32 like the converter
}


TOP_NAMES = {
    "model.embed_tokens.weight": ("token_embd.weight", False),
    "model.norm.weight": ("output_norm.weight", True),
    "lm_head.weight": ("output.weight", False),
}


def gguf_names(hf_name):
    """The GGUF tensors one HF state-dict entry becomes, as [(name, kept F32)]: one, or for an MoE
    layer's gate_up_proj [n_expert, 2 * n_ff_exp, n_embd] two (gate then up, halves of axis 1).
    The one owner of the naming: export and from_gguf's reading back both go through it."""
    if hf_name in TOP_NAMES:
        return [TOP_NAMES[hf_name]]
    parts = hf_name.split(".")
    if parts[:2] != ["model", "layers"]:
        raise SystemExit(f"export: no GGUF name for {hf_name}")
    p, rest = f"blk.{int(parts[2])}.", ".".join(parts[3:])
    if rest in LAYER_NAMES:
        g, keep = LAYER_NAMES[rest]
        return [(p + g, keep)]
    if rest == "mlp.experts.gate_up_proj":
        return [(p + "ffn_gate_exps.weight", False), (p + "ffn_up_exps.weight", False)]
    if rest == "mlp.experts.down_proj":  # [n_expert, n_embd, n_ff_exp]
        return [(p + "ffn_down_exps.weight", False)]
    raise SystemExit(f"export: no GGUF name for {hf_name}")


def gguf_tensors(model):
    """(gguf name, float32 tensor, keep_f32) in the converter's order (HF state-dict order)."""
    assert model.config.num_hidden_layers > 0
    out = []
    for name, t in model.state_dict().items():
        t = t.detach().float()
        names = gguf_names(name)
        parts = [t] if len(names) == 1 else torch.chunk(t, 2, dim=1)
        out += [(g, part.contiguous(), keep) for (g, keep), part in zip(names, parts)]
    return out


@torch.no_grad()
def round_to_file_precision(model):
    """Rounds every tensor the file stores as BF16 to BF16 (nearest even), in place."""
    keep = {n for n, _, k in gguf_tensors(model) if k}
    for name, p in model.named_parameters():
        if p.ndim >= 2 and not (name.endswith("mlp.gate.weight") or name in keep):
            p.copy_(p.to(torch.bfloat16).float())


def bf16_bits(t):
    return t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def write_hf_dir(model, tok, out_dir, name):
    """config.json + weights + tokenizer files, the inputs of llama.cpp's converter."""
    os.makedirs(out_dir, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out_dir)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    added = {}
    for text, special in tiny_tokenizer.ADDED:
        added[str(tok.token_to_id(text))] = {
            "content": text, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": special,
        }
    config = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
        "bos_token": None, "eos_token": tiny_tokenizer.EOS, "pad_token": tiny_tokenizer.PAD,
        "chat_template": chat.qwen3_template_text(), "clean_up_tokenization_spaces": False,
        "errors": "replace", "model_max_length": model.config.max_position_embeddings,
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(f"# {name}\n\nPopper's tiny trained model (scripts/train_tiny.py).\n")


def token_table(tok):
    """(tokens, token types, merges) as the converter's get_vocab_base + SpecialVocab give them."""
    vocab = tok.get_vocab(with_added_tokens=True)
    n = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [gguf.TokenType.UNUSED] * n
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.NORMAL
    for text, special in tiny_tokenizer.ADDED:
        i = tok.token_to_id(text)
        looks_special = text.startswith("<|") and text.endswith("|>")
        types[i] = gguf.TokenType.CONTROL if special or looks_special else gguf.TokenType.USER_DEFINED
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, types, merges


def export_gguf(model, tok, path, name):
    """Writes `model` (already rounded) to `path`; returns the tensor list written."""
    c = model.config
    arch = ARCH[c.model_type]
    w = gguf.GGUFWriter(path + ".tmp", arch)
    tensors = gguf_tensors(model)
    total = sum(t.numel() for _, t, _ in tensors)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    if arch == "qwen3moe":
        per_expert = sum(t.numel() for n, t, _ in tensors if "_exps" in n) // c.num_experts
        shared = total - per_expert * c.num_experts
        w.add_size_label(gguf.size_label(total, shared, per_expert, c.num_experts))
    else:
        w.add_size_label(gguf.size_label(total, total, 0, 0))
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    if arch == "qwen3moe":
        w.add_expert_count(c.num_experts)
        w.add_expert_used_count(c.num_experts_per_tok)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    if arch == "qwen3moe":
        w.add_expert_feed_forward_length(c.moe_intermediate_size)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = token_table(tok)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.token_to_id(tiny_tokenizer.PAD))  # Qwen3: config.json bos_token_id
    w.add_eos_token_id(tok.token_to_id(tiny_tokenizer.EOS))
    w.add_pad_token_id(tok.token_to_id(tiny_tokenizer.PAD))
    w.add_add_bos_token(False)
    w.add_chat_template(chat.qwen3_template_text())
    for n, t, keep in tensors:
        if keep:
            w.add_tensor(n, t.numpy().astype(np.float32))
        else:
            w.add_tensor(n, bf16_bits(t), raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".tmp", path)
    return tensors


def verify_gguf(model, path):
    """Every tensor in the file equals the (rounded) model's, bit for bit; returns the count."""
    r = gguf.GGUFReader(path)
    want = {n: (t, keep) for n, t, keep in gguf_tensors(model)}
    got = {t.name: t for t in r.tensors}
    if set(want) != set(got):
        raise SystemExit(f"{path}: tensors differ: missing {set(want) - set(got)}, extra {set(got) - set(want)}")
    for n, (t, keep) in want.items():
        data = np.asarray(got[n].data)
        ref = t.numpy().astype(np.float32) if keep else bf16_bits(t)
        if data.shape != ref.shape and data.size == ref.size:
            data = data.reshape(ref.shape)
        if keep:
            same = np.array_equal(data.view(np.uint32), ref.view(np.uint32))
        else:
            same = np.array_equal(data.view(np.uint16), ref)
        if not same:
            raise SystemExit(f"{path}: {n} differs from the model")
    return len(want)
