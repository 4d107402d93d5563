"""Training loop for the tiny models (transformers' own modules, CPU, fixed seed).

The loss is next-token cross-entropy on the reply tokens only (the prompt is context, not a
target), plus transformers' load-balancing loss for the MoE router. Sequences are
right-padded, so no attention mask is needed: a causal model never looks at the padding after
a real token. Held-out accuracy is measured teacher-forced: a task counts as right when the
argmax at every reply position is the reply's token, which is exactly when greedy decoding
would produce the reply (including the closing <|im_end|>).
"""
import os
import random
import time

import torch
import torch.nn.functional as F
from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

from . import chat, tasks


def encode_task(tok, task):
    """(ids, n_prompt): the generation prompt's tokens then the reply's."""
    prompt = tok.encode(chat.prompt_text(task.prompt), add_special_tokens=False).ids
    reply = tok.encode(chat.reply_text(task.answer, task.thinking), add_special_tokens=False).ids
    return prompt + reply, len(prompt)


def make_batch(encoded, pad_id):
    """[B, T] ids, [B, T] targets (-100 off the reply; target t is token t+1)."""
    T = max(len(ids) for ids, _ in encoded)
    x = torch.full((len(encoded), T), pad_id, dtype=torch.long)
    y = torch.full((len(encoded), T), -100, dtype=torch.long)
    for b, (ids, n_prompt) in enumerate(encoded):
        x[b, : len(ids)] = torch.tensor(ids)
        y[b, n_prompt - 1 : len(ids) - 1] = torch.tensor(ids[n_prompt:])
    return x, y


def forward_loss(model, x, y, aux_coef, pad_id):
    """(loss, ce, aux, argmax at target positions, targets)."""
    is_moe = model.config.model_type == "qwen3_moe"
    kw = {"output_router_logits": True} if is_moe else {}
    out = model.model(input_ids=x, use_cache=False, **kw)
    h = out.last_hidden_state
    sel = y != -100
    logits = model.lm_head(h[sel])  # only the reply positions need the output head
    targets = y[sel]
    ce = F.cross_entropy(logits.float(), targets)
    aux = torch.zeros(())
    if is_moe:
        mask = (x != pad_id).long()  # the router's load over real tokens only
        aux = load_balancing_loss_func(
            out.router_logits, model.config.num_experts, model.config.num_experts_per_tok, mask
        )
    return ce + aux_coef * aux, ce, aux, logits.argmax(-1), targets


@torch.no_grad()
def evaluate(model, tok, held, pad_id, batch_size=32):
    """Teacher-forced exact match per family: {family: (right, total)}."""
    model.eval()
    order = sorted(range(len(held)), key=lambda i: len(held[i].prompt))
    result = {f: [0, 0] for f in tasks.FAMILIES}
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = [encode_task(tok, held[i]) for i in idx]
        x, y = make_batch(enc, pad_id)
        out = model.model(input_ids=x, use_cache=False)
        logits = model.lm_head(out.last_hidden_state)
        ok = ((logits.argmax(-1) == y) | (y == -100)).all(-1)
        for i, good in zip(idx, ok.tolist()):
            r = result[held[i].family]
            r[0] += int(good)
            r[1] += 1
    model.train()
    return {f: tuple(v) for f, v in result.items()}


def lr_at(step, args):
    """Warmup, a constant stretch, then a linear decay over the last decay_steps (WSD)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    into_decay = step - (args.steps - args.decay_steps)
    if into_decay < 0:
        return args.lr
    return args.lr * (1.0 - 0.98 * into_decay / args.decay_steps)


class Batcher:
    """Batches of similar length: a pool of `pool` batches' worth of tasks is sorted by token
    count and cut, and the batches come out in a shuffled order."""

    def __init__(self, tok, stream, batch_size, pool, seed):
        self.tok, self.stream, self.batch_size, self.pool = tok, stream, batch_size, pool
        self.rng = random.Random(f"batches:{seed}")
        self.queue = []

    def next(self, level):
        if not self.queue:
            enc = [encode_task(self.tok, self.stream.next(level)) for _ in range(self.batch_size * self.pool)]
            enc.sort(key=lambda e: len(e[0]))
            self.queue = [enc[i : i + self.batch_size] for i in range(0, len(enc), self.batch_size)]
            self.rng.shuffle(self.queue)
        return self.queue.pop()


def train(model, tok, held, args, log, checkpoint_path):
    """Trains `model` in place for args.steps steps, logging to `log(dict)`. Resumes from
    `checkpoint_path` when it exists and saves it every args.checkpoint_every steps, so a run
    stopped on the shared machine goes on exactly where it was (same batches, same updates)."""
    pad_id = tok.token_to_id("<|endoftext|>")
    weights = {f: float(w) for f, w in (kv.split("=") for kv in args.family_weights.split(","))}
    unknown = sorted(set(weights) - set(tasks.GENERATORS))
    if unknown:
        raise SystemExit(f"--family-weights: unknown families {unknown} (known: {sorted(tasks.GENERATORS)})")
    stream = tasks.TrainStream(args.seed, [t.prompt for t in held], weights)
    batcher = Batcher(tok, stream, args.batch, 8, args.seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-8,
    )
    start, ce_avg, wall0, cpu0 = 0, None, 0.0, 0.0
    if os.path.exists(checkpoint_path):
        ck = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        stream.rng.setstate(ck["stream_rng"])
        stream.rejected = ck["stream_rejected"]
        batcher.rng.setstate(ck["batcher_rng"])
        batcher.queue = ck["batcher_queue"]
        start, ce_avg, wall0, cpu0 = ck["step"], ck["ce_avg"], ck["wall_s"], ck["cpu_s"]
        log({"resumed_at_step": start})
    model.train()
    t0, c0 = time.time() - wall0, time.process_time() - cpu0

    def save(step):
        ck = {"model": model.state_dict(), "opt": opt.state_dict(), "stream_rng": stream.rng.getstate(),
              "stream_rejected": stream.rejected, "batcher_rng": batcher.rng.getstate(),
              "batcher_queue": batcher.queue, "step": step, "ce_avg": ce_avg,
              "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0}
        torch.save(ck, checkpoint_path + ".tmp")
        os.replace(checkpoint_path + ".tmp", checkpoint_path)

    for step in range(start, args.steps):
        level = min(1.0, step / max(1, args.curriculum_steps))
        x, y = make_batch(batcher.next(level), pad_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        loss, ce, aux, _, _ = forward_loss(model, x, y, args.aux_coef, pad_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ce_avg = ce.item() if ce_avg is None else 0.98 * ce_avg + 0.02 * ce.item()
        done = step + 1
        last = done == args.steps
        if done % args.log_every == 0 or last:
            rec = {"step": done, "level": round(level, 3), "lr": round(opt.param_groups[0]["lr"], 6),
                   "loss": round(ce_avg, 4), "aux": round(float(aux), 4),
                   "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
            if done % args.eval_every == 0 or last:
                acc = evaluate(model, tok, held, pad_id)
                rec["held_out"] = {f: round(r / n, 3) for f, (r, n) in acc.items()}
                rec["held_out_all"] = round(sum(r for r, _ in acc.values()) / sum(n for _, n in acc.values()), 4)
            log(rec)
        if done % args.checkpoint_every == 0 or last:
            save(done)
    return model
