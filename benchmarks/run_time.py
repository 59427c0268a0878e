"""Time `make run` cold (embedding cache empty) and warm on the example corpus; or, with
``--devset``, a warm `analysis run` on a dev set's notes, with the import time of the CLI.

Usage: .venv/bin/python benchmarks/run_time.py [--repeats 3]
       .venv/bin/python benchmarks/run_time.py --devset /work/shared/devsets/homecare_nordic [--repeats 5]
Prints a Markdown table row per measurement; copy it into benchmarks/README.md together
with the machine line it prints. The cache is moved aside, never deleted, for the cold run.
The devset run embeds once into a temporary cache (not timed), then times warm runs from it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
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


def _analysis(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "analysis.cli", *arguments]


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def devset_runs(devset: Path, repeats: int) -> None:
    """Warm `analysis run` on a dev set (its notes, seed themes and personas), after one untimed run."""
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        config = work / "analysis.toml"
        config.write_text(f'[paths]\nnotes = ["{(devset / "notes.csv").as_posix()}"]\n'
                          f'seed_themes = "{(devset / "seed_themes.yml").as_posix()}"\n'
                          f'personas = "{(devset / "personas.yml").as_posix()}"\n'
                          'overrides = ""\nout = "out"\ncache = "cache"\n', encoding="utf-8")
        run = _analysis("run", "--config", str(config))
        if CACHE.exists():  # the project's warm cache, if it holds these notes, saves the first embedding
            shutil.copytree(CACHE, work / "cache")
        timed(run, work)
        print("| measurement | wall time (s) |")
        print("|---|---:|")
        for repeat in range(repeats):
            imports = timed([sys.executable, "-c", "import analysis.cli, analysis.pipeline"], work)
            print(f"| import analysis.cli + analysis.pipeline {repeat + 1} | {imports:.2f} |", flush=True)
            print(f"| warm `analysis run` {repeat + 1} ({devset.name}) | {timed(run, work):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devset", type=Path, help="a dev set folder: time warm runs on its notes instead")
    args = parser.parse_args()
    if args.devset:
        devset_runs(args.devset, args.repeats)
        return
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
