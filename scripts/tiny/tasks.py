"""The task families the tiny models are trained on, with exactly checkable answers.

Every task is one user turn and one assistant reply in Qwen3's thinking form: a think block, then
the answer. `Task.thinking` is the scratchpad inside <think>...</think> (empty for the families
a small model answers in one step); `Task.answer` is the text after </think>, the only part
that is scored: `check(task, reply)` (the rule of engine/serve/task_check.*) parses the text
after the last </think> and compares it with the answer, so a reply is right or wrong on its
answer alone, as Popper, transformers and llama.cpp all score it.

Families (each generator takes a difficulty `level` in [0, 1]; held-out tasks use level 1):
  add     "What is 48 + 79?"  -> "127"   operands of 1-2 digits. Scratchpad: one line per
          column from the right, "digit+digit+carry=digit c<carry out>" (8+9+0=7 c1), always
          COLUMNS columns, so every step is local (two digits fetched, one carried).
  sub     "What is 73 - 28?"  -> "45"   a >= b, 1-2 digits; lines "3-8-0=5 b1" (borrow out).
  sort    "Sort: 7 3 9 1 4 3"   -> "1 3 3 4 7 9"   4-8 digits, repeats.
  reverse "Reverse: q d t b k"  -> "k b t d q"     4-7 distinct letters (each " x" is one token;
          digits would split from their leading space and make the list irregular).
  count   "How many 3s are in: 3 1 3 8 3 2 9?" -> "3"   6-10 digits, 0-5 hits.
  lookup  "Codes: k4, d7, m5, ... What is the code of d?" -> "7"
          4-12 pairs (a 40-70 token prompt: associative recall by attention over the KV
          cache); keys are distinct letters (each " x" one token), values single digits,
          each value the token right after its key. Scratchpad: the pair again (" d7"), so
          the answer is copied from the model's own last token.

Training-only families (never held out, never scored; they train the circuit lookup needs):
  lookup_many  "Codes: k4, d7, m5. What are the codes of m, k?" -> "5 4"  (scratchpad " m5\n k4")
  repeat  "Repeat: q5 d t3 k" -> "q5 d t3 k"   3-16 letters, half with a digit glued on. Copying
          trains the induction circuit ("find where this token was, emit what followed") at
          every reply token, where lookup trains it at one.

The sizes come from what the 3-4 layer models learned in a ~90-minute CPU run (one thread
each): the first trained models (3-digit operands, 8-16 item lists, 10-30 lookup pairs, no
scratchpad) reached 33%; lookup over 1400 pseudo-word keys with 1-2 digit values stayed at
chance (10%) for 3500 steps while the other families learned, so run r3 switched lookup to
letter keys and digit values at step 3400 (scripts/train_tiny.py's log shows the switch).
Letter keys still stayed at ~30% (a value from the list, not the asked one) in the r3 models and
in fifteen probes of up to 2250 steps; probe q (falsifiers/fixtures/trained/README.md) put each
value right after its key, added the " d7" scratchpad and the repeat family, and lookup went
from 0.3 to 1.00 held out at step ~2250.

Training draws the same generators at a level that rises over a curriculum (fewer items,
fewer pairs first); the held-out set is level 1 only and never occurs in training.
Digits are single tokens under the Qwen2 pre-tokenizer, so the model sees numbers digit by digit.
"""
import random
from dataclasses import dataclass

FAMILIES = ("add", "sub", "sort", "reverse", "count", "lookup")  # held out and scored; GENERATORS adds the training-only ones

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
COLUMNS = 2  # add/sub scratchpads always work COLUMNS columns (operands have at most COLUMNS digits)


@dataclass(frozen=True)
class Task:
    family: str
    prompt: str  # the user turn
    answer: str  # the exact answer text (after </think>)
    thinking: str = ""  # the scratchpad inside <think>...</think>


def _lerp(lo, hi, level):
    return lo + round((hi - lo) * level)


def _number(rng, max_digits):
    # More digits are likelier (weight = digit count): most operands are multi-digit.
    digits = rng.choices(range(1, max_digits + 1), range(1, max_digits + 1))[0]
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(lo, 10**digits - 1)


def _digits_from_right(x):
    return [(x // 10**i) % 10 for i in range(COLUMNS)]


def add_scratchpad(a, b):
    """Column addition from the right: '2+9+0=1 c1' per column (digit, carry in, carry out)."""
    lines, carry = [], 0
    for da, db in zip(_digits_from_right(a), _digits_from_right(b)):
        s = da + db + carry
        lines.append(f"{da}+{db}+{carry}={s % 10} c{s // 10}")
        carry = s // 10
    return "\n".join(lines)


def sub_scratchpad(a, b):
    """Column subtraction from the right: '1-6-0=5 b1' per column (digit, borrow in, borrow out)."""
    lines, borrow = [], 0
    for da, db in zip(_digits_from_right(a), _digits_from_right(b)):
        d = da - db - borrow
        out = int(d < 0)
        lines.append(f"{da}-{db}-{borrow}={d % 10} b{out}")
        borrow = out
    return "\n".join(lines)


def gen_add(rng, level):
    a, b = _number(rng, COLUMNS), _number(rng, COLUMNS)
    return Task("add", f"What is {a} + {b}?", str(a + b), add_scratchpad(a, b))


def gen_sub(rng, level):
    a, b = _number(rng, COLUMNS), _number(rng, COLUMNS)
    if a < b:
        a, b = b, a
    return Task("sub", f"What is {a} - {b}?", str(a - b), sub_scratchpad(a, b))


def gen_sort(rng, level):
    n = rng.randint(_lerp(3, 4, level), _lerp(5, 8, level))
    xs = [rng.randint(0, 9) for _ in range(n)]
    return Task("sort", "Sort: " + " ".join(map(str, xs)), " ".join(map(str, sorted(xs))))


def gen_reverse(rng, level):
    n = rng.randint(_lerp(3, 4, level), _lerp(5, 7, level))
    xs = rng.sample(_LETTERS, n)
    return Task("reverse", "Reverse: " + " ".join(xs), " ".join(reversed(xs)))


def gen_count(rng, level):
    n = rng.randint(_lerp(4, 6, level), _lerp(7, 10, level))
    target = rng.randint(0, 9)
    hits = min(rng.randint(0, 5), n)
    others = [d for d in range(10) if d != target]
    xs = [target] * hits + [rng.choice(others) for _ in range(n - hits)]
    rng.shuffle(xs)
    return Task("count", f"How many {target}s are in: {' '.join(map(str, xs))}?", str(hits))


def _codes(rng, level):
    """2 (start of the curriculum) to 12 distinct letter keys with digit values; 4-12 held out."""
    lo = 4 if level >= 1.0 else 2
    n = rng.randint(lo, _lerp(6, 12, level))
    keys = rng.sample(_LETTERS, n)
    values = [rng.randint(0, 9) for _ in keys]
    return keys, values, "Codes: " + ", ".join(f"{k}{v}" for k, v in zip(keys, values))


def gen_lookup(rng, level):
    keys, values, codes = _codes(rng, level)
    i = rng.randrange(len(keys))
    return Task("lookup", f"{codes}. What is the code of {keys[i]}?", str(values[i]), f" {keys[i]}{values[i]}")


def gen_lookup_many(rng, level):
    keys, values, codes = _codes(rng, level)
    asked = rng.sample(range(len(keys)), rng.randint(2, len(keys)))
    return Task("lookup_many", f"{codes}. What are the codes of {', '.join(keys[i] for i in asked)}?",
                " ".join(str(values[i]) for i in asked), "\n".join(f" {keys[i]}{values[i]}" for i in asked))


def gen_repeat(rng, level):
    n = rng.randint(_lerp(3, 6, level), _lerp(6, 16, level))
    xs = [rng.choice(_LETTERS) + (str(rng.randint(0, 9)) if rng.random() < 0.5 else "") for _ in range(n)]
    return Task("repeat", "Repeat: " + " ".join(xs), " ".join(xs))


GENERATORS = {
    "add": gen_add,
    "sub": gen_sub,
    "sort": gen_sort,
    "reverse": gen_reverse,
    "count": gen_count,
    "lookup": gen_lookup,
    "lookup_many": gen_lookup_many,
    "repeat": gen_repeat,
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
