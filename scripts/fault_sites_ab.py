#!/usr/bin/env python3
"""Interleaved A/B of the two builds of the fault sites: the normal build (sites compiled in,
every fault off) against one configured with -DPOPPER_FAULT_SITES=OFF (fault_on() is constant
false, the sites compiled away). It checks docs/faults.md's claim that a fault costs nothing when
off. A measuring tool, not part of the build or tests.

  python3 scripts/fault_sites_ab.py [--rounds 8] [--on build] [--off build-nofaults]

Builds model_bench and kernels_bench in both trees (configuring the OFF tree if it does not exist
yet), then reports three things, the first two exact whatever the machine's load:
1. Objects: which engine object files differ between the builds (only the files holding a site
   should; every SIMD kernel's object must be byte-identical, i.e. the same machine code).
2. Instructions (when valgrind is installed): callgrind's instruction count inside
   popper::generate for one BM_DecodeCached_TinyMoeQ4KM iteration (8-token prompt, 32 greedy
   decode steps, 1 thread, scalar kernels because valgrind cannot decode every AVX2 encoding
   the packed kernels use; the sites sit outside the kernels, so the path does not matter).
3. Time, with --rounds N: rounds A B B A A B ... (the order alternates so neither build always
   runs first on a warm cache), one repetition of each benchmark per build per round, medians,
   the ratio OFF/ON and its spread (min..max of the per-round ratios). Needs a quiet machine to
   say more than the noise.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The decode and prefill paths carry every hot-path site (docs/faults.md's table); the kernel
# benchmarks carry none, so they measure only the noise of the machine.
MODEL_FILTER = "BM_DecodeCached_TinyMoeQ4KM|BM_DecodeNoCache_TinyMoeQ4KM"
KERNEL_FILTER = "BM_PackedMatvec_Q4_K|BM_PackedMatmul_Q4_K|BM_Attention_F16"


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)
    if p.returncode != 0:
        sys.exit(f"fault_sites_ab: {' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def build(tree, off):
    if not os.path.exists(os.path.join(tree, "CMakeCache.txt")):
        flags = ["-DPOPPER_FAULT_SITES=OFF"] if off else []
        sh(["cmake", "-S", ROOT, "-B", tree, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            "-DPOPPER_BUILD_TESTS=OFF", *flags])
    cache = open(os.path.join(tree, "CMakeCache.txt")).read()
    if ("POPPER_FAULT_SITES:BOOL=OFF" in cache) != off:
        sys.exit(f"fault_sites_ab: {tree} is not configured with POPPER_FAULT_SITES={'OFF' if off else 'ON'}")
    sh(["cmake", "--build", tree, "--target", "model_bench", "kernels_bench"])


def bench(tree, binary, filt):
    out = sh([os.path.join(tree, "benchmarks", binary), f"--benchmark_filter={filt}",
              "--benchmark_format=json"], env=dict(os.environ, POPPER_BENCH_BACKEND="cpu"))
    rows = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"fault_sites_ab: {binary} {b['name']}: {b.get('error_message')}")
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
        rows[b["name"]] = b["real_time"] * scale
    return rows


def compare_objects(on, off):
    same, differ = 0, []
    for dirpath, _, files in os.walk(os.path.join(on, "engine")):
        for f in sorted(files):
            if not f.endswith(".o"):
                continue
            a = os.path.join(dirpath, f)
            b = os.path.join(off, os.path.relpath(a, on))
            if not os.path.exists(b):
                continue
            if open(a, "rb").read() == open(b, "rb").read():
                same += 1
            else:
                differ.append(os.path.relpath(a, on))
    print(f"\nobjects: {same} engine object files byte-identical, {len(differ)} differ:")
    for d in sorted(differ):
        print(f"  {d}")


def count_instructions(tree):
    """Instructions executed inside popper::generate per benchmark iteration, or None."""
    out = os.path.join(tree, "fault_sites_ab.callgrind")
    env = dict(os.environ, POPPER_SIMD="scalar", POPPER_BENCH_BACKEND="cpu", POPPER_BENCH_THREADS="1")
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--toggle-collect=popper::generate*",
                        os.path.join(tree, "benchmarks", "model_bench"),
                        "--benchmark_filter=BM_DecodeCached_TinyMoeQ4KM", "--benchmark_format=json"],
                       capture_output=True, text=True, errors="replace", env=env)
    m = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or m is None:
        sys.exit(f"fault_sites_ab: callgrind on {tree} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    iterations = json.loads(p.stdout)["benchmarks"][0]["iterations"]
    return int(m.group(1)) / iterations


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=0, help="timing rounds (0: none, else at least 2)")
    ap.add_argument("--on", default=os.path.join(ROOT, "build"), help="build tree with the sites (default build/)")
    ap.add_argument("--off", default=os.path.join(ROOT, "build-nofaults"), help="tree configured OFF")
    a = ap.parse_args()
    if a.rounds == 1 or a.rounds < 0:
        sys.exit("fault_sites_ab: --rounds must be 0 or at least 2")
    trees = {"on": a.on, "off": a.off}
    for name, tree in trees.items():
        print(f"fault_sites_ab: building {tree} (sites {name})", flush=True)
        build(tree, name == "off")
    compare_objects(a.on, a.off)
    if shutil.which("valgrind"):
        print("\ninstructions inside popper::generate, one decode of 32 tokens (callgrind):", flush=True)
        ir = {name: count_instructions(tree) for name, tree in trees.items()}
        print(f"  ON {ir['on']:,.0f}   OFF {ir['off']:,.0f}   ON-OFF {ir['on'] - ir['off']:+,.0f} "
              f"({(ir['on'] - ir['off']) / ir['off']:+.2e} of the decode)")
    else:
        print("\ninstructions: valgrind not installed; skipped")
    if a.rounds == 0:
        return

    times = {"on": {}, "off": {}}  # build -> benchmark -> [seconds per round]
    for r in range(a.rounds):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        for name in order:
            for binary, filt in (("model_bench", MODEL_FILTER), ("kernels_bench", KERNEL_FILTER)):
                for bm, t in bench(trees[name], binary, filt).items():
                    times[name].setdefault(bm, []).append(t)
        print(f"fault_sites_ab: round {r + 1}/{a.rounds} ({' '.join(order)}) done", flush=True)

    print(f"\n{'benchmark':<44} {'ON median':>12} {'OFF median':>12} {'OFF/ON':>8}  per-round OFF/ON")
    for bm in times["on"]:
        on, off = times["on"][bm], times["off"].get(bm, [])
        if len(off) != len(on):
            sys.exit(f"fault_sites_ab: {bm}: {len(on)} ON runs but {len(off)} OFF runs")
        ratios = [b / x for x, b in zip(on, off)]
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(f"{bm:<44} {m_on * 1e3:>10.3f}ms {m_off * 1e3:>10.3f}ms {m_off / m_on:>8.3f}  "
              f"{min(ratios):.3f}..{max(ratios):.3f}")


if __name__ == "__main__":
    main()
