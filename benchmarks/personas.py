"""Persona linking against gold_persona on every dev set, next to a name-mention baseline.

For each set the configured pipeline runs as `analysis run` would (the set's seed themes and
personas, no overrides, the gold columns unseen), and its persona links are compared with the
set's ``gold_persona`` column (notes whose gold is blank are left out). Printed per set:

* per method (tag, mention, similarity): links made, precision (share of them that match gold)
  and recall (share of the gold persona notes they find);
* macro-F1 and accuracy over all personas and ``none`` for the package and for the baseline;
* the share of true-``none`` notes linked to a persona (target: at most 3 %);
* what the similarity step said about its own reliability on the set.

The baseline ("name-mention") links the persona whose name, first name or an alias appears as a
word, with an optional genitive s (Astrids, Bengt's, Jonas'), case-insensitively; the first one
in the text wins; else ``none``.

``--sweep`` also prints macro-F1 and the none-linked share for a grid of similarity thresholds
and margins on every set, computed from the same similarity scores, so that the defaults can be
chosen by the worst set.

Usage: .venv/bin/python benchmarks/personas.py [--devsets ../shared/devsets] [--sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from analysis import pipeline
from analysis.config import load_config
from analysis.personas import (METHOD_MENTION, METHOD_SIMILARITY, METHOD_TAG, Persona, candidate_scores,
                               explicit_links, similarity_scores)
from analysis.schema import NO_PERSONA

ROOT = Path(__file__).resolve().parents[1]
METHODS = (METHOD_TAG, METHOD_MENTION, METHOD_SIMILARITY)


def _shared(*parts: str) -> Path:
    """The shared folder next to the project (``../shared``), or /work/shared on the dev machine."""
    beside = ROOT.parent.joinpath("shared", *parts)
    return beside if beside.exists() else Path("/work/shared").joinpath(*parts)


def dev_sets(devsets: Path) -> dict[str, dict]:
    sets = {folder.name: {"notes": [folder / "notes.csv"], "personas": folder / "personas.yml",
                          "seed_themes": folder / "seed_themes.yml"}
            for folder in sorted(devsets.iterdir()) if (folder / "notes.csv").is_file()}
    sets["example (data/raw)"] = {"notes": [ROOT / "data" / "raw"], "personas": ROOT / "data" / "raw" / "personas.yml",
                                  "seed_themes": ROOT / "data" / "raw" / "seed_themes.yml"}
    return sets


# --------------------------------------------------------------------------- baseline


def _baseline_forms(persona: Persona) -> list[str]:
    first = persona.name.split()[0] if persona.name.split() else ""
    return sorted({form for form in (persona.name, first, *persona.aliases) if form}, key=lambda f: -len(f))


def name_mention(text: str, personas) -> str:
    """The persona whose name, first name or alias appears first as a word (optional genitive s)."""
    best = (len(text) + 1, NO_PERSONA)
    for persona in personas:
        forms = "|".join(re.escape(form) for form in _baseline_forms(persona))
        match = re.search(rf"(?<!\w)(?:{forms})(?:['’]s|s|['’])?(?!\w)", text, flags=re.IGNORECASE)
        if match and match.start() < best[0]:
            best = (match.start(), persona.id)
    return best[1]


# --------------------------------------------------------------------------- scoring


def macro_f1(gold, predicted) -> float:
    return float(f1_score(gold, predicted, average="macro", zero_division=0))


def none_linked(gold, predicted) -> float:
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    none = gold == NO_PERSONA
    return float((predicted[none] != NO_PERSONA).mean()) if none.any() else 0.0


def method_rows(name: str, gold: np.ndarray, links: pd.DataFrame) -> list[dict]:
    rows = []
    n_gold = int((gold != NO_PERSONA).sum())
    for method in METHODS:
        made = links["persona_method"].to_numpy() == method
        right = made & (links["persona_id"].to_numpy() == gold)
        rows.append({"set": name, "method": method, "links": int(made.sum()),
                     "precision": right.sum() / made.sum() if made.any() else float("nan"),
                     "recall": right.sum() / n_gold if n_gold else float("nan")})
    return rows


def run_set(name: str, paths: dict, config_path: Path, embedder, cache: Path):
    with tempfile.TemporaryDirectory() as out:
        config = load_config(config_path, paths={"notes": [str(p) for p in paths["notes"]],
                                                 "personas": str(paths["personas"]),
                                                 "seed_themes": str(paths["seed_themes"]),
                                                 "overrides": "", "out": out, "cache": str(cache)})
        result = pipeline.run(config, embedder=embedder, progress=False)
    gold = result.notes["gold_persona"].fillna("").astype(str).str.strip().str.casefold().to_numpy() \
        if "gold_persona" in result.notes.columns else np.full(len(result.notes), "")
    keep = gold != ""
    return result, gold, keep


def sweep_rows(name, result, gold, keep, config, embedder) -> list[dict]:
    """Macro-F1 and the none-linked share for other choices of the corpus bar's quantile and the margin."""
    notes = result.notes.drop(columns=[c for c in result.notes.columns if c.startswith("gold_")])
    links = explicit_links(notes, result.personas)
    similarity = similarity_scores(notes, result.personas, pipeline.note_space(result, embedder), links)
    null = similarity.loc[(links["persona_method"] == "none") & ~similarity["voiced"] & similarity["score"].notna(),
                          "score"].to_numpy(dtype=float)
    rows = []
    for margin in (0.02, 0.05):
        scores = candidate_scores(links, similarity, dataclasses.replace(config.personas, min_margin=margin))
        for quantile in (0.8, 0.85, 0.9, 0.95, 0.98):
            threshold = max(config.personas.similarity_threshold, float(np.quantile(np.sort(null), quantile)))
            predicted = links["persona_id"].to_numpy().copy()
            linked = (scores >= threshold).to_numpy()
            predicted[linked] = similarity["best_persona"].to_numpy()[linked]
            rows.append({"set": name, "margin": margin, "quantile": quantile,
                         "macro_f1": macro_f1(gold[keep], predicted[keep]),
                         "none_linked": none_linked(gold[keep], predicted[keep])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devsets", type=Path, default=_shared("devsets"))
    parser.add_argument("--config", type=Path, default=ROOT / "analysis.toml")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "processed" / "cache")
    parser.add_argument("--sweep", action="store_true", help="also print a threshold × margin grid per set")
    args = parser.parse_args()
    config = load_config(args.config, paths={"cache": str(args.cache)})
    embedder = pipeline.build_embedder(config, progress=False)
    methods, totals, sweeps = [], [], []
    for name, paths in dev_sets(args.devsets).items():
        result, gold, keep = run_set(name, paths, args.config, embedder, args.cache)
        links = result.persona_links
        predicted = links["persona_id"].astype(str).str.casefold().to_numpy()
        baseline = np.array([name_mention(t if isinstance(t, str) else "", result.personas)
                             for t in result.notes["text"]])
        methods += method_rows(name, gold[keep], links[keep].assign(persona_id=predicted[keep]))
        totals.append({"set": name, "notes": int(keep.sum()), "gold_persona": int((gold[keep] != NO_PERSONA).sum()),
                       "macro_f1": macro_f1(gold[keep], predicted[keep]),
                       "baseline_f1": macro_f1(gold[keep], baseline[keep]),
                       "none_linked": none_linked(gold[keep], predicted[keep]),
                       "baseline_none_linked": none_linked(gold[keep], baseline[keep]),
                       "similarity": result.persona_report.get("similarity", {}).get("status", "")})
        totals[-1]["gain"] = totals[-1]["macro_f1"] - totals[-1]["baseline_f1"]
        if args.sweep:
            sweeps += sweep_rows(name, result, gold, keep, config, embedder)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 120)
    print("Per method (precision: share of the method's links that match gold; recall: of all gold persona notes)")
    print(pd.DataFrame(methods).to_string(index=False, float_format="%.3f"))
    print("\nTotals (macro-F1 over the personas and none; none_linked: true-none notes linked to a persona)")
    table = pd.DataFrame(totals)
    print(table.drop(columns="similarity").to_string(index=False, float_format="%.3f"))
    print(f"\nworst gain over the baseline: {table['gain'].min():+.3f}; "
          f"worst none-linked share: {table['none_linked'].max():.3f}")
    for row in totals:
        print(f"similarity on {row['set']}: {row['similarity']}")
    if sweeps:
        grid = pd.DataFrame(sweeps)
        baseline = {row["set"]: row["baseline_f1"] for row in totals}
        grid["gain"] = grid["macro_f1"] - grid["set"].map(baseline)
        wide = grid.pivot_table(index=["margin", "quantile"], columns="set", values=["gain", "none_linked"])
        wide.columns = [f"{value}: {name}" for value, name in wide.columns]
        wide["worst gain"] = grid.groupby(["margin", "quantile"])["gain"].min()
        wide["worst none_linked"] = grid.groupby(["margin", "quantile"])["none_linked"].max()
        print("\nSweep: gain in macro-F1 over the baseline and none-linked share, by margin and quantile of the bar")
        print(wide.to_string(float_format="%.3f"))


if __name__ == "__main__":
    sys.exit(main())
