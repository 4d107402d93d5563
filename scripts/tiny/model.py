"""The two tiny architectures, as transformers configs.

Shapes follow the agreement with `quant`: every matrix's input dimension (n_embd,
n_head * head_dim, n_ff_exp, dense n_ff) is a multiple of 256, so Q4_K / Q5_K / Q6_K (256-wide
super-blocks) apply to every tensor without llama.cpp's fallback types. Everything else is
Qwen3-30B-A3B's design in miniature: GQA, per-head q/k RMSNorm, NeoX RoPE (theta 1e6),
softmax-top-k routing with renormalised weights, untied output head.
"""
from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

COMMON = dict(
    hidden_size=256,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    max_position_embeddings=1024,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=False,
    attention_bias=False,
    hidden_act="silu",
    initializer_range=0.02,
    use_cache=True,
)


def make_config(arch, vocab_size, n_layer, eos_id, pad_id, n_ff=1024, n_expert=16, n_expert_used=2, n_ff_exp=256):
    ids = dict(vocab_size=vocab_size, eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=pad_id)
    if arch == "qwen3moe":
        return Qwen3MoeConfig(
            **COMMON,
            **ids,
            num_hidden_layers=n_layer,
            intermediate_size=n_ff,  # unused: every layer is sparse (decoder_sparse_step 1)
            moe_intermediate_size=n_ff_exp,
            num_experts=n_expert,
            num_experts_per_tok=n_expert_used,
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            router_aux_loss_coef=0.01,
        )
    if arch == "qwen3":
        return Qwen3Config(**COMMON, **ids, num_hidden_layers=n_layer, intermediate_size=n_ff)
    raise ValueError(f"unknown arch {arch!r} (want qwen3moe or qwen3)")


def model_class(arch):
    return Qwen3MoeForCausalLM if arch in ("qwen3moe", "qwen3_moe") else Qwen3ForCausalLM


def make_model(config):
    return model_class(config.model_type)(config)


def check_shapes(config):
    """The 256-multiple rule above, or a SystemExit naming the dimension."""
    dims = {"n_embd": config.hidden_size, "n_head*head_dim": config.num_attention_heads * config.head_dim}
    if config.model_type == "qwen3_moe":
        dims["n_ff_exp"] = config.moe_intermediate_size
    else:
        dims["n_ff"] = config.intermediate_size
    for name, v in dims.items():
        if v % 256:
            raise SystemExit(f"{name} = {v}: want a multiple of 256 (k-quant super-blocks)")
