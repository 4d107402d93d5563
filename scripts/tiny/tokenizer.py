"""The tiny models' tokenizer: byte-level BPE trained with `tokenizers` on the task corpus.

It is built the way Qwen2/Qwen3's tokenizer.json is: NFC normaliser, the Qwen2 split regex
(digits are single tokens) then byte-level mapping, ByteLevel decoder; ChatML control tokens
and the <think> pair appended after the BPE vocabulary, as Qwen3 numbers them.
"""
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# tokenizer.json of Qwen2 / Qwen3 ("pre_tokenizer" -> Split pattern); llama.cpp's "qwen2" pre.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# (text, special): special tokens are control tokens; <think> / </think> are plain added tokens
# in Qwen3 (tokenizer_config.json added_tokens_decoder, "special": false).
ADDED = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<think>", False),
    ("</think>", False),
]
EOS = "<|im_end|>"
PAD = "<|endoftext|>"


def set_pipeline(tok):
    """Qwen2's normaliser, pre-tokenizer and decoder on `tok` (whatever its BPE model)."""
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)


def add_tokens(tok):
    """The ADDED tokens, in order, after the BPE vocabulary."""
    for text, special in ADDED:
        added = AddedToken(text, special=special, normalized=False, single_word=False, lstrip=False, rstrip=False)
        if special:
            tok.add_special_tokens([added])
        else:
            tok.add_tokens([added])


def train_tokenizer(texts, vocab_size):
    """A tokenizer with `vocab_size` BPE tokens (bytes + merges) plus the ADDED tokens."""
    tok = Tokenizer(models.BPE())
    set_pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer)
    add_tokens(tok)
    return tok


def load(path):
    return Tokenizer.from_file(path)


def check_single_tokens(tok, texts):
    """SystemExit naming the texts `tok` does not hold as one token (e.g. lookup keys)."""
    split = [t for t in texts if len(tok.encode(t, add_special_tokens=False).ids) != 1]
    if split:
        raise SystemExit(f"tokenizer: {len(split)} texts are not single tokens: {split[:10]}")
