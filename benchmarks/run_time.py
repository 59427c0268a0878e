"""Time `make run` cold (embedding cache empty) and warm on the example corpus; or, with
``--devset``, a warm `analysis run` on a dev set's notes, with the import time of the CLI.

Usage: .venv/bin/python benchmarks/run_time.py [--repeats 3]
       .venv/bin/python benchmarks/run_time.py --devset /work/shared/devsets/homecare_nordic [--repeats 5]
Prints a Markdown table row per measurement; copy it into benchmarks/README.md together
with the machine line it prints. The cache is moved aside, never deleted, for the cold run.
The devset run embeds once into a temporary cache (not timed), then times warm runs from it:
each repeat times, in fresh processes, `import analysis.cli`, `import analysis.cli, analysis.pipeline`,
a warm `analysis run` (wall and the child's CPU time, user + sys), and the "figures" stage of
`write_outputs` (its `on_stage` hook, in one process); it prints every repeat, then the medians
and the load average before and after. The code timed is the `analysis` that `sys.executable`
imports: run it with PYTHONPATH=<worktree>/src to time a worktree's sources.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
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
    return timed_cpu(command, cwd)[0]


def timed_cpu(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and the child's CPU time (user + sys) of one command, in seconds."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


#: One process: the run in memory, then write_outputs with its "figures" stage timed (wall, CPU).
FIGURE_STAGE = """
import os, sys, time
from contextlib import contextmanager
from pathlib import Path
from analysis import outputs, pipeline
from analysis.config import load_config
seen = {}
@contextmanager
def stage(name):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    seen[name] = (time.perf_counter() - wall, time.process_time() - cpu)
config = load_config(Path("analysis.toml"))
result = pipeline.run(config, progress=False)
outputs.write_outputs(result, config.resolve(config.paths.out), on_stage=stage)
print(*seen["figures"])
"""


def figure_stage(cwd: Path) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", FIGURE_STAGE], cwd=cwd, check=True, capture_output=True, text=True)
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def devset_runs(devset: Path, repeats: int) -> None:
    """Warm `analysis run` on a dev set (its notes, seed themes and personas), after one untimed run."""
    import analysis

    print(f"machine: {machine()}")
    print(f"code: {Path(analysis.__file__).parent}")
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
        print(f"load average before: {load_average()}")
        rows = {"import analysis.cli": [], "import analysis.cli + analysis.pipeline": [],
                f"warm `analysis run` ({devset.name})": [], "figures stage of write_outputs": []}
        print("| measurement | repeat | wall (s) | CPU user+sys (s) |")
        print("|---|---:|---:|---:|")
        for repeat in range(repeats):
            measured = {"import analysis.cli": timed_cpu([sys.executable, "-c", "import analysis.cli"], work),
                        "import analysis.cli + analysis.pipeline": timed_cpu(
                            [sys.executable, "-c", "import analysis.cli, analysis.pipeline"], work),
                        f"warm `analysis run` ({devset.name})": timed_cpu(run, work),
                        "figures stage of write_outputs": figure_stage(work)}
            for name, (wall, cpu) in measured.items():
                rows[name].append((wall, cpu))
                print(f"| {name} | {repeat + 1} | {wall:.2f} | {cpu:.2f} |", flush=True)
        print(f"load average after: {load_average()}")
        print(f"| measurement | median wall (s) | median CPU user+sys (s) | of {repeats} |")
        print("|---|---:|---:|---:|")
        for name, values in rows.items():
            print(f"| {name} | {statistics.median(v[0] for v in values):.2f} | "
                  f"{statistics.median(v[1] for v in values):.2f} | {repeats} |")


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
