"""Time `make run` cold (embedding cache empty) and warm on the example corpus.

Usage: .venv/bin/python benchmarks/run_time.py [--repeats 3]
Prints a Markdown table row per measurement; copy it into benchmarks/README.md together
with the machine line it prints. The cache is moved aside, never deleted, for the cold run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "processed" / "cache"


def timed_make_run() -> float:
    start = time.perf_counter()
    subprocess.run(["make", "run"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["make", f"{ROOT}/.venv/.core-installed"], cwd=ROOT, check=True)
    print(f"machine: {machine()}")
    print("| run | wall time (s) |")
    print("|---|---:|")
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as aside:
            if CACHE.exists():
                shutil.move(str(CACHE), Path(aside) / "cache")
            cold = timed_make_run()
            print(f"| cold {repeat + 1} (empty embedding cache) | {cold:.1f} |", flush=True)
            warm = timed_make_run()
            print(f"| warm {repeat + 1} | {warm:.1f} |", flush=True)
            shutil.rmtree(CACHE, ignore_errors=True)
            if (Path(aside) / "cache").exists():
                shutil.move(str(Path(aside) / "cache"), CACHE)


if __name__ == "__main__":
    main()
