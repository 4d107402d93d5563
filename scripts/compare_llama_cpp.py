#!/usr/bin/env python3
"""Side by side on one GGUF and thread count: Popper (benchmarks/model_bench), llama.cpp's
llama-bench and ik_llama.cpp's llama-bench. A measuring tool, not part of the build or tests.

  python3 scripts/compare_llama_cpp.py --model /work/models/30b-a3b-q4_k_m.gguf --threads 2

Tests (llama-bench's): pp512 (512 prompt tokens on an empty cache), tg64 (64 single-token
decodes at depth 0) and tg64 at depth 4096 (after 4096 cached positions; the depth prefill is
not timed). pp512 and tg64 run in interleaved rounds (popper, llama.cpp, ik, ik -rtr, popper,
...), one repetition per engine per round, so load from other processes falls on every engine
alike; the depth test runs once per engine with --depth-reps repetitions (its untimed prefill
costs minutes). Medians over the rounds, ratios against the best peer, and decode GB/s =
tg tok/s x the weight bytes one decode step reads (model_bench's bytes_per_token, the same
model for every engine) against the streaming-read bandwidth probe (model_bench's
probe_GB_per_s, same threads).

Peers: llama.cpp's llama-bench as built from the llama-cpp-python sdist (default flags: flash
attention auto); ik_llama.cpp's with `-fa 1 -fmoe 1` and, as a second entry, `-rtr 1` too
(run-time repacking). A peer whose binary is missing is listed as skipped, not guessed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LLAMA = "/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench"
DEFAULT_IK = "/work/peers/ik_llama.cpp/build/bin/llama-bench"


def run(cmd, env=None, timeout=None):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"compare: {' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout, time.time() - t0


class Popper:
    name = "popper"

    def __init__(self, binary, model, threads):
        self.binary, self.model, self.threads = binary, model, threads
        self.facts = {}

    def _bench(self, filt, reps=1):
        env = dict(os.environ, POPPER_BENCH_MODEL=self.model, POPPER_BENCH_THREADS=str(self.threads),
                   POPPER_BENCH_BACKEND="cpu")
        out, _ = run([self.binary, f"--benchmark_filter={filt}", "--benchmark_format=json",
                      f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=false"], env=env)
        rows = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
        for b in rows:
            if b.get("error_occurred"):
                sys.exit(f"compare: model_bench {b['name']}: {b.get('error_message')}")
        return rows

    def pp_tg(self):
        rows = self._bench("BM_Prefill_30bA3bQ4KM/512|BM_Decode_30bA3bQ4KM/0/")
        pp = [b["tok_per_s"] for b in rows if b["name"].startswith("BM_Prefill")]
        tg = [b for b in rows if b["name"].startswith("BM_Decode")]
        for key in ("bytes_per_token", "probe_GB_per_s", "rss_GB", "peak_rss_GB", "file_GB", "load_s", "kv_cache_GB"):
            if tg and key in tg[0]:
                self.facts.setdefault(key, []).append(tg[0][key])
        return pp[0], tg[0]["tok_per_s"]

    def depth(self, depth, reps):
        rows = self._bench(f"BM_Decode_30bA3bQ4KM/{depth}/", reps)
        return [b["tok_per_s"] for b in rows]


class LlamaBench:
    def __init__(self, name, binary, model, threads, extra, depth_style):
        self.name, self.binary, self.model, self.threads, self.extra = name, binary, model, threads, extra
        self.depth_style = depth_style  # "d": -d N (llama.cpp); "gp": -gp N,64 (ik_llama.cpp)

    def _bench(self, args):
        out, _ = run([self.binary, "-m", self.model, "-t", str(self.threads), "-o", "json", *self.extra, *args])
        return json.loads(out[out.index("["):])

    def pp_tg(self):
        rows = self._bench(["-p", "512", "-n", "64", "-r", "1"])
        pp = [r["avg_ts"] for r in rows if r["n_prompt"] == 512 and r["n_gen"] == 0]
        tg = [r["avg_ts"] for r in rows if r["n_prompt"] == 0 and r["n_gen"] == 64]
        return pp[0], tg[0]

    def depth(self, depth, reps):
        if self.depth_style == "d":
            rows = self._bench(["-p", "0", "-n", "64", "-d", str(depth), "-r", str(reps)])
        else:
            rows = self._bench(["-p", "0", "-n", "0", "-gp", f"{depth},64", "-r", str(reps)])
        samples = [s for r in rows if r["n_gen"] == 64 for s in r.get("samples_ts", [r["avg_ts"]])]
        return samples


def machine_load():
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    top = subprocess.run(["top", "-bn1", "-o", "%CPU"], capture_output=True, text=True).stdout.splitlines()
    busy = [l for l in top[7:15] if l.strip()]
    return {"loadavg": " ".join(load), "top": busy}


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved pp512+tg64 rounds")
    ap.add_argument("--depth", type=int, default=4096)
    ap.add_argument("--depth-reps", type=int, default=2)
    ap.add_argument("--no-depth", action="store_true", help="skip the tg64-at-depth test")
    ap.add_argument("--popper", default=os.path.join(ROOT, "build/benchmarks/model_bench"))
    ap.add_argument("--llama-bench", default=DEFAULT_LLAMA)
    ap.add_argument("--ik-bench", default=DEFAULT_IK)
    ap.add_argument("--json-out", help="write every sample and fact here")
    a = ap.parse_args()

    if not os.path.exists(a.model):
        sys.exit(f"compare: no model at {a.model}")
    engines, skipped = [Popper(a.popper, a.model, a.threads)], []
    if not os.path.exists(a.popper):
        sys.exit(f"compare: no model_bench at {a.popper} (bash scripts/build.sh)")
    for name, binary, extra, style in [("llama.cpp", a.llama_bench, [], "d"),
                                       ("ik_llama.cpp -fa 1 -fmoe 1", a.ik_bench, ["-fa", "1", "-fmoe", "1"], "gp"),
                                       ("ik_llama.cpp -fa 1 -fmoe 1 -rtr 1", a.ik_bench,
                                        ["-fa", "1", "-fmoe", "1", "-rtr", "1"], "gp")]:
        if os.path.exists(binary):
            engines.append(LlamaBench(name, binary, a.model, a.threads, extra, style))
        else:
            skipped.append(f"{name} ({binary} not built)")

    load_before = machine_load()
    samples = {e.name: {"pp512": [], "tg64": [], "tg64_depth": []} for e in engines}
    for rnd in range(a.rounds):
        for e in engines:
            pp, tg = e.pp_tg()
            samples[e.name]["pp512"].append(pp)
            samples[e.name]["tg64"].append(tg)
            print(f"round {rnd + 1}/{a.rounds} {e.name:<34} pp512 {pp:7.2f}  tg64 {tg:6.2f}", flush=True)
    if not a.no_depth:
        for e in engines:
            samples[e.name]["tg64_depth"] = e.depth(a.depth, a.depth_reps)
            print(f"depth {a.depth} {e.name:<34} tg64 {statistics.median(samples[e.name]['tg64_depth']):6.2f}",
                  flush=True)
    load_after = machine_load()

    facts = {k: statistics.median(v) for k, v in engines[0].facts.items()}
    bpt = facts.get("bytes_per_token")
    probe = facts.get("probe_GB_per_s")
    med = {n: {k: (statistics.median(v) if v else None) for k, v in s.items()} for n, s in samples.items()}
    peers = [n for n in med if n != "popper"]

    def best_peer(key):
        vals = [med[n][key] for n in peers if med[n][key] is not None]
        return max(vals) if vals else None

    print()
    print(f"model {a.model}, {a.threads} threads; medians of {a.rounds} interleaved rounds "
          f"(depth {a.depth}: {a.depth_reps} repetitions)")
    if bpt and probe:
        print(f"decode reads {bpt / 1e9:.3f} GB of weights per token; bandwidth probe {probe:.1f} GB/s "
              f"-> roofline {probe * 1e9 / bpt:.2f} tok/s")
    hdr = f"| {'engine':<34} | {'pp512':>7} | {'tg64':>6} | {'tg64@d' + str(a.depth):>10} | {'d/d0 slowdown':>13} | {'tg GB/s':>7} | {'% roofline':>10} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c) + 0) for c in hdr.split("|")[1:-1]) + "|")
    for n, m in med.items():
        gbs = m["tg64"] * bpt / 1e9 if bpt and m["tg64"] else None
        roof = 100 * gbs / probe if gbs and probe else None
        slow = m["tg64"] / m["tg64_depth"] if m["tg64_depth"] else None
        print(f"| {n:<34} | {fmt(m['pp512']):>7} | {fmt(m['tg64']):>6} | {fmt(m['tg64_depth']):>10} | "
              f"{fmt(slow):>13} | {fmt(gbs, 1):>7} | {fmt(roof, 0):>10} |")
    for key, label in [("pp512", "pp512"), ("tg64", "tg64"), ("tg64_depth", f"tg64@d{a.depth}")]:
        bp = best_peer(key)
        if bp and med["popper"][key]:
            print(f"popper / best peer, {label}: {med['popper'][key] / bp:.2f}x")
    if "rss_GB" in facts:
        print(f"popper memory: RSS {facts['rss_GB']:.2f} GB, peak {facts['peak_rss_GB']:.2f} GB, weights "
              f"{facts['file_GB']:.2f} GB, KV cache {facts.get('kv_cache_GB', 0):.3f} GB; load {facts['load_s']:.1f} s")
    for s in skipped:
        print(f"skipped: {s}")
    print(f"machine load before: {load_before['loadavg']}, after: {load_after['loadavg']}")
    for line in load_before["top"][:5]:
        print(f"  busy at start: {line.strip()}")
    if a.json_out:
        with open(a.json_out + ".tmp", "w") as f:
            json.dump({"model": a.model, "threads": a.threads, "samples": samples, "medians": med, "facts": facts,
                       "load_before": load_before, "load_after": load_after, "skipped": skipped}, f, indent=1)
        os.replace(a.json_out + ".tmp", a.json_out)


if __name__ == "__main__":
    main()
