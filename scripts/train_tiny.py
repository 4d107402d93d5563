#!/usr/bin/env python3
"""Train Popper's tiny Qwen3 / Qwen3-MoE models on checkable tasks, export them to GGUF and
dump transformers' reference outputs (a fixture generator: never needed by the build or tests).

Steps (each reads what the previous one wrote in --run-dir, outside the repository):
  tokenizer   byte-level BPE on a seeded sample of the training tasks   -> tokenizer.json
              (--from-gguf F: the tokenizer F was made with, to continue from F's weights)
  train       --arch qwen3moe|qwen3: transformers model, fixed seed      -> <arch>/hf, <arch>/train.jsonl
              (--init-from F: from F's weights instead of random ones;
               --attention-from F: from F's embedding, head and attention, F of either arch)
  export      the trained model -> GGUF (BF16 matrices, F32 norms/router) -> <arch>.gguf
  reference   transformers' greedy answers and logits on the held-out set -> <arch>.reference.json
  install     copies the GGUFs, logs, corpus and references into falsifiers/fixtures/trained/

Usage (Python from /work/venv-ref: torch CPU, transformers, tokenizers, gguf):
  python scripts/train_tiny.py tokenizer --run-dir /work/tiny-runs/r1
  python scripts/train_tiny.py train --arch qwen3moe --run-dir /work/tiny-runs/r1
  ...
The training run is deterministic for a given seed, step count and thread count; a run stopped
midway resumes from its checkpoint with the same batches and updates.
"""
import argparse
import json
import os
import platform
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny import chat, tasks  # noqa: E402
from tiny.files import sha256, write_json  # noqa: E402

HELD_OUT_SEED = 11
HELD_OUT_PER_FAMILY = 50
TOKENIZER_SAMPLE = 40000


def held_out():
    return tasks.held_out(HELD_OUT_SEED, HELD_OUT_PER_FAMILY)


def cmd_tokenizer(args):
    from tiny import tokenizer

    os.makedirs(args.run_dir, exist_ok=True)
    path = os.path.join(args.run_dir, "tokenizer.json")
    if args.from_gguf:
        from tiny import from_gguf

        tok = from_gguf.tokenizer_from_gguf(args.from_gguf)
        tok.save(path)
        print(f"tokenizer: {tok.get_vocab_size()} tokens from {args.from_gguf} -> {path}")
        return
    held = held_out()
    stream = tasks.TrainStream(f"tokenizer:{args.seed}", [t.prompt for t in held])
    texts = []
    for _ in range(TOKENIZER_SAMPLE):
        t = stream.next(random.Random(len(texts)).random())
        texts.append(chat.prompt_text(t.prompt) + chat.reply_text(t.answer, t.thinking))
    tok = tokenizer.train_tokenizer(texts, args.vocab)
    tokenizer.check_single_tokens(tok, [" " + c for c in tasks._LETTERS] + list(tasks._LETTERS))
    tok.save(path)
    print(f"tokenizer: {tok.get_vocab_size()} tokens -> {path}")


def cmd_train(args):
    import torch

    from tiny import model as tiny_model
    from tiny import tokenizer, train

    chat.self_check()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tok = tokenizer.load(os.path.join(args.run_dir, "tokenizer.json"))
    out = os.path.join(args.run_dir, args.arch)
    os.makedirs(out, exist_ok=True)
    config = tiny_model.make_config(
        args.arch, tok.get_vocab_size(), args.layers, tok.token_to_id(tokenizer.EOS), tok.token_to_id(tokenizer.PAD),
        n_ff=args.n_ff,
    )
    tiny_model.check_shapes(config)
    model = tiny_model.make_model(config)
    if args.init_from and args.attention_from:
        raise SystemExit("--init-from and --attention-from: give one")
    if args.init_from:
        from tiny import export, from_gguf

        arch, n_layer, n_ff = from_gguf.gguf_config(args.init_from)
        if (arch, n_layer) != (args.arch, args.layers) or (arch == "qwen3" and n_ff != args.n_ff):
            raise SystemExit(f"--init-from {args.init_from}: {arch}, {n_layer} layers, n_ff {n_ff}; "
                             f"the run asks for {args.arch}, {args.layers} layers, n_ff {args.n_ff}")
        n = from_gguf.load_weights(model, args.init_from)
        export.verify_gguf(model, args.init_from)  # loaded weights export to the same file's tensors
        print(f"{args.arch}: {n} parameters set from {args.init_from}")
    elif args.attention_from:
        from tiny import from_gguf

        n = from_gguf.load_attention(model, args.attention_from)
        print(f"{args.arch}: {n} parameters (embedding, head, attention) set from {args.attention_from}")
    n_params = sum(p.numel() for p in model.parameters())
    log_path = os.path.join(out, "train.jsonl")
    log_file = open(log_path, "a")

    def log(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    log({"run": {"arch": args.arch, "params": n_params, "layers": args.layers, "n_ff": args.n_ff,
                 "vocab": tok.get_vocab_size(), "args": {k: v for k, v in vars(args).items() if k != "fn"}, "torch": torch.__version__,
                 "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "note": "wall_s is on a shared 2-core machine; cpu_s is this process's CPU time"}})
    held = held_out()
    train.train(model, tok, held, args, log, os.path.join(out, "checkpoint.pt"))
    model.save_pretrained(os.path.join(out, "hf"))
    log({"saved": os.path.join(out, "hf")})


def load_trained(args):
    """The trained transformers model of args.arch: <arch>/hf, or the latest checkpoint when
    --checkpoint is given (to try the pipeline on a run still going)."""
    import torch

    from tiny import model as tiny_model
    from tiny import tokenizer

    tok = tokenizer.load(os.path.join(args.run_dir, "tokenizer.json"))
    out = os.path.join(args.run_dir, args.arch)
    if args.checkpoint:
        with open(os.path.join(out, "train.jsonl")) as f:
            run = json.loads(f.readline())["run"]
        config = tiny_model.make_config(args.arch, tok.get_vocab_size(), run["layers"], tok.token_to_id(tokenizer.EOS),
                                        tok.token_to_id(tokenizer.PAD), n_ff=run["n_ff"])
        model = tiny_model.make_model(config)
        ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
        model.load_state_dict(ck["model"])
        print(f"{args.arch}: checkpoint at step {ck['step']}")
    else:
        model = tiny_model.model_class(args.arch).from_pretrained(os.path.join(out, "hf"), dtype=torch.float32)
    return model.float().eval(), tok


def model_name(arch):
    return f"trained-{arch}-bf16"


def cmd_export(args):
    from tiny import export

    torch_threads(args)
    model, tok = load_trained(args)
    export.round_to_file_precision(model)
    name = model_name(args.arch)
    export.write_hf_dir(model, tok, os.path.join(args.run_dir, args.arch, "export"), name)
    path = os.path.join(args.run_dir, f"{name}.gguf")
    export.export_gguf(model, tok, path, name)
    n = export.verify_gguf(model, path)
    print(f"{path}: {n} tensors, {os.path.getsize(path) / 1e6:.1f} MB, sha256 {sha256(path)}")


def cmd_reference(args):
    import torch

    from tiny import model as tiny_model
    from tiny import reference, tokenizer

    torch_threads(args)
    tok = tokenizer.load(os.path.join(args.run_dir, "tokenizer.json"))
    model = tiny_model.model_class(args.arch).from_pretrained(os.path.join(args.run_dir, args.arch, "export"), dtype=torch.float32,
                                attn_implementation="eager")
    name = model_name(args.arch)
    gguf_path = os.path.join(args.run_dir, f"{name}.gguf")
    held = held_out()
    t0 = time.time()
    refs = reference.make_references(model, tok, held)
    per, total = reference.accuracy(refs)
    import transformers

    doc = {
        "model": name, "gguf_sha256": sha256(gguf_path), "transformers": transformers.__version__,
        "torch": torch.__version__, "compute": "float32, eager attention, weights as stored in the GGUF",
        "top_k": reference.TOP_K, "accuracy": per, "accuracy_all": total, "tasks": refs,
    }
    path = os.path.join(args.run_dir, f"{name}.reference.json")
    write_json(path, doc)
    margins = sorted(r["min_margin"] for r in refs)
    print(f"{path}: {len(refs)} tasks in {time.time() - t0:.0f} s; accuracy {total} {per}; "
          f"smallest top-1 margins {margins[:3]}")


def cmd_crosscheck(args):
    from tiny import crosscheck

    name = model_name(args.arch)
    ours = os.path.join(args.run_dir, f"{name}.gguf")
    hf_dir = os.path.join(args.run_dir, args.arch, "export")
    problems, extra, n_keys, n_tensors = crosscheck.crosscheck(args.llama_cpp, hf_dir, ours, ours + ".converter.gguf")
    print(f"{name}: converter wrote {n_keys} keys and {n_tensors} tensors; ours adds {extra or 'nothing'}")
    for p in problems:
        print("  " + p)
    if problems:
        raise SystemExit(f"{name}: {len(problems)} differences from llama.cpp's converter")
    print(f"{name}: every key and tensor the converter writes is in our file, equal")


def task_id(task, index):
    return f"{task.family}-{index:03d}"


def cmd_install(args):
    """Copies what the tests read into falsifiers/fixtures/trained/ (the committed fixtures)."""
    import shutil

    from tiny import reference

    dest = os.path.join(chat.ROOT, "falsifiers", "fixtures", "trained")
    os.makedirs(dest, exist_ok=True)
    held = held_out()
    corpus = {
        "generator": "scripts/train_tiny.py (tiny/tasks.py held_out)",
        "held_out_seed": HELD_OUT_SEED, "per_family": HELD_OUT_PER_FAMILY, "families": list(tasks.FAMILIES),
        "check": "the text after the last </think>, blanks collapsed, equals answer (engine/serve/task_check.h)",
        "tasks": [{"id": task_id(t, i), "family": t.family, "messages": [{"role": "user", "content": t.prompt}],
                   "max_tokens": reference.MAX_NEW_TOKENS, "answer": t.answer} for i, t in enumerate(held)],
    }
    write_json(os.path.join(dest, "tasks.json"), corpus, indent=1)
    for arch in args.archs:
        name = model_name(arch)
        for src, dst in ((f"{name}.gguf", f"{name}.gguf"), (f"{name}.reference.json", f"{name}.reference.json"),
                         (os.path.join(arch, "train.jsonl"), f"{name}.train.jsonl")):
            shutil.copyfile(os.path.join(args.run_dir, src), os.path.join(dest, dst))
        print(f"installed {name} -> {dest}")
    sizes = sum(os.path.getsize(os.path.join(dest, f)) for f in os.listdir(dest))
    print(f"{dest}: {sizes / 1e6:.1f} MB in all")


def torch_threads(args):
    import torch

    torch.set_num_threads(args.threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tokenizer")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=2048, help="BPE tokens (bytes + merges), before the added ones")
    p.add_argument("--from-gguf", help="rebuild the tokenizer a trained GGUF was made with instead of training one")
    p.set_defaults(fn=cmd_tokenizer)

    p = sub.add_parser("train")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--arch", required=True, choices=["qwen3moe", "qwen3"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--n-ff", type=int, default=1024, help="dense FFN width (qwen3)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--decay-steps", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--curriculum-steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--aux-coef", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--family-weights", default="add=1,sub=1,sort=0.6,reverse=0.8,count=1,lookup=1.4",
                   help="how often each family is drawn in training (relative)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--init-from", help="start from a trained GGUF's weights (BF16/F32, this script's export) "
                   "instead of random ones; use the tokenizer rebuilt from the same file")
    p.add_argument("--attention-from", help="start from the embedding, head and attention of a trained GGUF of either "
                   "arch with the same tokenizer (its layers; FFN outputs zeroed); not with --init-from")
    p.set_defaults(fn=cmd_train)
    for cmd, fn in (("export", cmd_export), ("reference", cmd_reference)):
        p = sub.add_parser(cmd)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--arch", required=True, choices=["qwen3moe", "qwen3"])
        p.add_argument("--checkpoint", action="store_true", help="use the run's latest checkpoint")
        p.add_argument("--threads", type=int, default=1)
        p.set_defaults(fn=fn)
    p = sub.add_parser("install")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--archs", nargs="+", default=["qwen3moe", "qwen3"], choices=["qwen3moe", "qwen3"])
    p.set_defaults(fn=cmd_install)

    p = sub.add_parser("crosscheck")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--arch", required=True, choices=["qwen3moe", "qwen3"])
    p.add_argument("--llama-cpp", default="/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp")
    p.set_defaults(fn=cmd_crosscheck)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
