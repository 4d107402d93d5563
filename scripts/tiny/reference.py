"""transformers' own answers and logits on the held-out tasks: the references Popper is held to.

For every held-out task the exported model (weights as rounded into the GGUF, F32 compute,
eager attention) decodes greedily with transformers' generate() and KV cache. Recorded per
task: the user turn, its prompt ids, the greedy ids (ending with <|im_end|> when the model
stopped), the reply text, whether its parsed answer is right, and
per step the top-TOP_K logits (ids and values) and the top-1/top-2 margin. For the first
FULL_ROWS_PER_FAMILY tasks of each family the whole step-0 logit row is kept too, so the
parity check also covers every vocabulary entry, not only the likely ones.
"""
import torch

from . import chat, tasks, tokenizer as tiny_tokenizer

TOP_K = 5
FULL_ROWS_PER_FAMILY = 2
MAX_NEW_TOKENS = 32


def fmt(x):
    return float("%.9g" % x)  # round-trips a float32


@torch.no_grad()
def make_references(model, tok, held):
    model.eval()
    eos = tok.token_to_id(tiny_tokenizer.EOS)
    out, full_left = [], {f: FULL_ROWS_PER_FAMILY for f in tasks.FAMILIES}
    for i, t in enumerate(held):
        prompt = tok.encode(chat.prompt_text(t.prompt), add_special_tokens=False).ids
        x = torch.tensor([prompt])
        g = model.generate(
            x, attention_mask=torch.ones_like(x), max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
            eos_token_id=eos, pad_token_id=tok.token_to_id(tiny_tokenizer.PAD),
            output_logits=True, return_dict_in_generate=True,
        )
        ids = g.sequences[0, len(prompt):].tolist()
        steps = []
        for row in g.logits:
            row = row[0].float()
            top = torch.topk(row, TOP_K)
            steps.append({
                "ids": top.indices.tolist(),
                "logits": [fmt(v) for v in top.values.tolist()],
            })
        # ids end with <|im_end|> when the model stopped; the reply is the text before it.
        reply = tok.decode(ids[:-1] if ids and ids[-1] == eos else ids, skip_special_tokens=False)
        rec = {
            "id": f"{t.family}-{i:03d}", "family": t.family, "user": t.prompt, "prompt": prompt, "tokens": ids,
            "reply": reply, "answer": t.answer, "correct": tasks.check(t, reply), "steps": steps,
            "min_margin": fmt(min(s["logits"][0] - s["logits"][1] for s in steps)),
        }
        if full_left[t.family] > 0:
            full_left[t.family] -= 1
            rec["full_logits_step0"] = [fmt(v) for v in g.logits[0][0].float().tolist()]
        out.append(rec)
    return out


def accuracy(refs):
    per = {}
    for r in refs:
        right, n = per.get(r["family"], (0, 0))
        per[r["family"]] = (right + int(r["correct"]), n + 1)
    total = sum(a for a, _ in per.values()) / sum(n for _, n in per.values())
    return {f: round(a / n, 4) for f, (a, n) in per.items()}, round(total, 4)
