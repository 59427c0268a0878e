"""The dev suite: the theme engine on every labelled corpus, in one table.

Sets: the two independently written devsets in ``../shared/devsets`` (homecare_nordic,
youth_leisure: gold themes, a *partial* seed file, personas), the example corpus's gold notes
(``data/raw``), and the public SIB-200 (nb, sv), SweFAQ and Swedish argumentation sets from
``../shared/benchdata``. Every set is reported; defaults are judged by the worst one.

For each set, on the same e5 vectors (names neutralised as the pipeline does, centred on the
set's language and note type):
  * inductive: the config's ThemeModel with no seeds (k found, ARI/AMI/NMI, nmi_lang), next to
    k-means told the true k on the centred vectors;
  * guided (devsets and example): the ThemeModel with the set's seed file and its lexical
    views: kappa / accuracy / macro-F1 (strict: a new theme never matches a gold id), and the
    matched recall of each gold theme the seed file leaves out (its best one-to-one match
    among the new themes, Hungarian matching);
  * stability: the same k and the ARI between a fit and a fit on the vectors plus Gaussian
    noise (sigma 1e-4, renormalised), and the ARI on the shared notes between the full fit and
    a fit on a random 90 %.

Run from the project root (numbers and observations: benchmarks/README.md):
    .venv/bin/python benchmarks/suite.py [--sets homecare youth ...] [--shared ../shared]
        [--out benchmarks/results/suite.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from analysis.config import load_config
from analysis.evaluate import UNASSIGNED, cluster_metrics, guided_metrics
from analysis.lexical import seed_lexical_scores
from analysis.load import load_notes
from analysis.personas import load_personas
from analysis.pipeline import build_embedder, theme_model_from_config, theme_texts
from analysis.schema import STATUS_OK
from analysis.themes import load_seed_themes, seed_prototypes

ROOT = Path(__file__).resolve().parents[1]
NOISE_SIGMA = 1e-4
SUBSAMPLE = 0.9


@dataclass
class SuiteSet:
    name: str
    notes: pd.DataFrame           # analysable notes with gold_theme
    seed_path: Path | None = None
    persona_path: Path | None = None
    groups: list[str] = field(default_factory=lambda: ["lang", "source_type"])


def _devset(shared: Path, folder: str, name: str) -> SuiteSet:
    base = shared / "devsets" / folder
    return SuiteSet(name, _gold_notes(load_notes([base / "notes.csv"], root=base)),
                    base / "seed_themes.yml", base / "personas.yml")


def _gold_notes(notes: pd.DataFrame) -> pd.DataFrame:
    gold = notes.get("gold_theme", pd.Series("", index=notes.index)).fillna("").astype(str).str.strip()
    keep = notes["status"].eq(STATUS_OK) & gold.ne("")
    return notes[keep].assign(gold_theme=gold[keep]).reset_index(drop=True)


def _bench(shared: Path, stem: str, name: str, lang: str) -> SuiteSet:
    frame = pd.read_csv(shared / "benchdata" / f"{stem}.csv", dtype=str, keep_default_na=False)
    notes = pd.DataFrame({"note_id": [f"{name}-{i}" for i in range(len(frame))], "text": frame["text"],
                          "lang": lang, "gold_theme": frame["label"]})
    return SuiteSet(name, notes, groups=[])


def suite_sets(shared: Path) -> dict:
    return {
        "homecare": lambda: _devset(shared, "homecare_nordic", "homecare"),
        "youth": lambda: _devset(shared, "youth_leisure", "youth"),
        "example": lambda: SuiteSet("example", _gold_notes(load_notes([ROOT / "data" / "raw"], root=ROOT)),
                                    ROOT / "data/raw/seed_themes.yml", ROOT / "data/raw/personas.yml"),
        "sib_nb": lambda: _bench(shared, "sib200_nob", "sib_nb", "nb"),
        "sib_sv": lambda: _bench(shared, "sib200_swe", "sib_sv", "sv"),
        "swefaq": lambda: _bench(shared, "sv_swefaq", "swefaq", "sv"),
        "argumentation": lambda: _bench(shared, "sv_argumentation_topics", "argumentation", "sv"),
    }


def _labels(model) -> np.ndarray:
    labels = np.asarray(model.labels_, dtype=object)
    return np.where(labels == "", UNASSIGNED, labels).astype(str)


def _noisy(vectors: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noisy = vectors + np.random.default_rng(seed).normal(0.0, sigma, vectors.shape)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def stability(fit, vectors: np.ndarray, groups: pd.DataFrame, full: np.ndarray) -> dict:
    """Agreement of the full fit with a fit under noise and with a fit on a random 90 %."""
    noisy = fit(_noisy(vectors, NOISE_SIGMA), groups)
    keep = np.sort(np.random.default_rng(2).choice(len(vectors), int(SUBSAMPLE * len(vectors)), replace=False))
    part = fit(vectors[keep], groups.iloc[keep].reset_index(drop=True))
    k = lambda labels: len(set(labels) - {UNASSIGNED})
    return {"noise_same_k": k(noisy) == k(full), "noise_ari": round(adjusted_rand_score(full, noisy), 4),
            "sub90_ari": round(adjusted_rand_score(full[keep], part), 4)}


def seedless_recall(gold: np.ndarray, predicted: np.ndarray, seed_ids: set[str]) -> dict[str, float]:
    """Recall of each gold theme the seed file leaves out, matched one-to-one to a new theme."""
    missing = sorted(set(gold) - seed_ids - {"other"})
    new = sorted({p for p in predicted if p.startswith("new_")})
    if not missing:
        return {}
    if not new:
        return {theme: 0.0 for theme in missing}
    overlap = np.array([[np.sum((gold == g) & (predicted == p)) for p in new] for g in missing])
    rows, cols = linear_sum_assignment(-overlap)
    recall = {theme: 0.0 for theme in missing}
    for r, c in zip(rows, cols):
        recall[missing[r]] = round(overlap[r, c] / max(1, np.sum(gold == missing[r])), 4)
    return recall


def run_set(bench: SuiteSet, config, embedder) -> dict:
    personas = load_personas(bench.persona_path) if bench.persona_path else []
    texts = theme_texts(bench.notes["text"].tolist(), personas, config.privacy.names)
    vectors = embedder.encode(texts, kind="query")
    groups = bench.notes[[c for c in bench.groups if c in bench.notes.columns]].astype(str).reset_index(drop=True)
    gold = bench.notes["gold_theme"].to_numpy(dtype=str)
    langs = bench.notes["lang"].to_numpy(dtype=str)
    model = theme_model_from_config(config)

    def fit(X, g, **seeds):
        return _labels(model.fit(X, groups=g, **seeds))

    inductive = fit(vectors, groups)
    centred = model.centre(vectors, groups)
    kmeans = KMeans(len(set(gold)), n_init=10, random_state=0).fit_predict(centred).astype(str)
    metrics = cluster_metrics(gold, inductive, langs if len(set(langs)) > 1 else None)
    row = {"set": bench.name, "n": len(gold), "true_k": len(set(gold)), "k": metrics["n_themes"],
           "ari": metrics["ari"], "ami": metrics["ami"], "nmi": metrics["nmi"], "nmi_lang": metrics["nmi_lang"],
           "kmeans_true_k_ari": round(adjusted_rand_score(gold, kmeans), 4),
           **stability(fit, vectors, groups, inductive)}
    if bench.seed_path:
        seeds = load_seed_themes(bench.seed_path)
        guided = fit(vectors, groups, seed_vectors=seed_prototypes(seeds, embedder, config.themes.seed_text), seed_ids=[s.id for s in seeds],
                     seed_lexical=seed_lexical_scores(texts, langs.tolist(), seeds))
        row |= {f"guided_{key}": value for key, value in guided_metrics(gold, guided).items()}
        row["seedless_recall"] = seedless_recall(gold, guided, {s.id for s in seeds})
    return row


def markdown(rows: list[dict]) -> str:
    columns = ["set", "n", "true_k", "k", "ari", "kmeans_true_k_ari", "nmi_lang", "guided_kappa",
               "guided_macro_f1", "seedless_recall", "noise_same_k", "noise_ari", "sub90_ari"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "–")
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v:.2f}" for k, v in value.items()) or "–"
            cells.append(str(value) if value is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--config", type=Path, default=ROOT / "analysis.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "suite.json")
    args = parser.parse_args(argv)
    loaders = suite_sets(args.shared)
    unknown = set(args.sets or ()) - set(loaders)
    if unknown:
        sys.exit(f"unknown set(s) {sorted(unknown)}; choose from {sorted(loaders)}")
    config = load_config(args.config)
    embedder = build_embedder(config, progress=False)
    rows = []
    for name in args.sets or loaders:
        rows.append(run_set(loaders[name](), config, embedder))
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print(markdown(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                                    "rows": rows}, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
