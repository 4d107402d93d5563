"""The task families the tiny models are trained on, with exactly checkable answers.

Every task is one user turn and one short assistant answer. `Task.answer` is the text the model
must produce; `check(family, prompt, reply)` decides a reply (the same rules the C++ bench and
falsifiers apply, see engine/serve/task_check.*): the answer parsed from the reply, after any
<think>...</think> block, must equal the expected answer.

Families (each generator takes a difficulty `level` in [0, 1]; held-out tasks use level 1):
  add     "What is 482 + 379?"                         -> "861"      1-3 digit operands
  sub     "What is 731 - 286?"                         -> "445"      a >= b, 1-3 digits
  sort    "Sort: 7 3 9 1 4 3"                          -> "1 3 3 4 7 9"   5-9 digits, repeats
  reverse "Reverse: q 4 t b 7"                         -> "7 b t 4 q"     5-9 letters/digits
  count   "How many 3s are in: 3 1 3 8 3 2 9?"         -> "3"        8-16 digits, 0-7 hits
  lookup  "Codes: lanu 41, tesko 7, ... What is the code of tesko?" -> "7"
          10-30 pairs (an 80-180 token context): attention and the KV cache at depth; keys
          are pseudo-words of 2-3 syllables, so a key is often several tokens.

Digits are single tokens under the Qwen2 pre-tokenizer, so the model sees numbers digit by digit.
"""
import random
from dataclasses import dataclass

FAMILIES = ("add", "sub", "sort", "reverse", "count", "lookup")

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Task:
    family: str
    prompt: str  # the user turn
    answer: str  # the exact answer text


def _lerp(lo, hi, level):
    return lo + round((hi - lo) * level)


def _number(rng, max_digits):
    # More digits are likelier (weight = digit count): most operands are multi-digit.
    digits = rng.choices(range(1, max_digits + 1), range(1, max_digits + 1))[0]
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(lo, 10**digits - 1)


def gen_add(rng, level):
    d = _lerp(2, 3, level)
    a, b = _number(rng, d), _number(rng, d)
    return Task("add", f"What is {a} + {b}?", str(a + b))


def gen_sub(rng, level):
    d = _lerp(2, 3, level)
    a, b = _number(rng, d), _number(rng, d)
    if a < b:
        a, b = b, a
    return Task("sub", f"What is {a} - {b}?", str(a - b))


def gen_sort(rng, level):
    n = rng.randint(5, _lerp(6, 9, level))
    xs = [rng.randint(0, 9) for _ in range(n)]
    return Task("sort", "Sort: " + " ".join(map(str, xs)), " ".join(map(str, sorted(xs))))


def gen_reverse(rng, level):
    n = rng.randint(5, _lerp(6, 9, level))
    xs = [rng.choice(_LETTERS + "0123456789") for _ in range(n)]
    return Task("reverse", "Reverse: " + " ".join(xs), " ".join(reversed(xs)))


def gen_count(rng, level):
    n = rng.randint(8, _lerp(10, 16, level))
    target = rng.randint(0, 9)
    hits = min(rng.randint(0, 7), n)
    others = [d for d in range(10) if d != target]
    xs = [target] * hits + [rng.choice(others) for _ in range(n - hits)]
    rng.shuffle(xs)
    return Task("count", f"How many {target}s are in: {' '.join(map(str, xs))}?", str(hits))


def pseudo_word(rng):
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3)))


def gen_lookup(rng, level):
    n = rng.randint(_lerp(4, 10, level), _lerp(12, 30, level))
    keys = []
    seen = set()
    while len(keys) < n:
        k = pseudo_word(rng)
        if k not in seen:
            seen.add(k)
            keys.append(k)
    values = [_number(rng, 3) for _ in keys]
    i = rng.randrange(n)
    pairs = ", ".join(f"{k} {v}" for k, v in zip(keys, values))
    return Task("lookup", f"Codes: {pairs}. What is the code of {keys[i]}?", str(values[i]))


GENERATORS = {
    "add": gen_add,
    "sub": gen_sub,
    "sort": gen_sort,
    "reverse": gen_reverse,
    "count": gen_count,
    "lookup": gen_lookup,
}


def held_out(seed, per_family):
    """`per_family` distinct tasks of each family at full difficulty, family by family."""
    rng = random.Random(f"held-out:{seed}")
    tasks, seen = [], set()
    for family in FAMILIES:
        made = 0
        while made < per_family:
            t = GENERATORS[family](rng, 1.0)
            if t.prompt in seen:
                continue
            seen.add(t.prompt)
            tasks.append(t)
            made += 1
    return tasks


class TrainStream:
    """An endless seeded stream of training tasks, none of whose prompts is held out."""

    def __init__(self, seed, excluded_prompts, weights=None):
        self.rng = random.Random(f"train:{seed}")
        self.excluded = set(excluded_prompts)
        self.weights = weights or {f: 1.0 for f in FAMILIES}
        self.rejected = 0

    def next(self, level):
        families = list(self.weights)
        w = [self.weights[f] for f in families]
        while True:
            family = self.rng.choices(families, w)[0]
            t = GENERATORS[family](self.rng, level)
            if t.prompt not in self.excluded:
                return t
            self.rejected += 1


def parse_answer(reply):
    """The answer in a reply: the text after the last </think>, stripped of blanks."""
    tail = reply.rsplit("</think>", 1)[-1]
    return " ".join(tail.split())


def check(task, reply):
    return parse_answer(reply) == task.answer
