"""The review loop as an analyst would feel it: how much each confirmed note helps.

For each labelled corpus (the devsets homecare_nordic and youth_leisure, and the example's gold
notes in data/raw), the gold labels play the analyst: start from the corpus's partial seed
file, take the review queue's top notes, "confirm" each with its gold theme (a pin; a gold
theme the seed file lacks becomes a new theme; gold ``other`` becomes an exclusion), re-run the
learning, and repeat, one round of T notes at a time (T = number of gold themes, ``other``
included). After 0, 2, 5 and 10 confirmed notes per theme, kappa, accuracy and macro-F1 are
measured on the notes not yet confirmed (gold ``other`` = no theme), next to a queue that
picks the notes at random (mean of ``--draws`` draws). At 0 the answer is the ThemeModel's own.

Each round is what ``analysis run`` does after a new overrides file: the same ThemeModel fit
(the overrides never change it) and ``analysis.learn.learn`` + ``analysis.review.queue_rows``
on the cached vectors. ``--time`` also times one real round of ``pipeline.run`` on
homecare_nordic (320 notes, embeddings cached) with a file of 5 pins per theme. ``--zero`` only
compares, with no note confirmed, the ThemeModel's answer with the learner's (trained on the
seed examples and descriptions alone), on every note (benchmarks/README.md, "Review loop").
``--moves`` only counts, on the example corpus as notebook 02 runs it (``analysis.toml``, every
note of data/raw, no personas), how many notes other than the decided ones change theme (or
status) after a first decision: 1 pin, 1 exclusion, 4 pins (the closest calls, each pinned to
its runner-up theme, as ``explore.example_overrides`` picks them).

    .venv/bin/python benchmarks/review_loop.py [--shared ../shared] [--draws 3] [--time] [--zero] [--moves]
        [--out benchmarks/results/review_loop.json] [--figure benchmarks/results/review_loop.png]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import ROOT, suite_sets  # noqa: E402

from analysis.config import load_config  # noqa: E402
from analysis.learn import EXCLUDED, learn, seed_example_vectors  # noqa: E402
from analysis.lexical import seed_lexical_scores  # noqa: E402
from analysis.overrides import Overrides  # noqa: E402
from analysis.personas import load_personas  # noqa: E402
from analysis.pipeline import build_embedder, theme_model_from_config, theme_texts  # noqa: E402
from analysis.review import queue_rows  # noqa: E402
from analysis.themes import load_seed_themes, seed_prototypes  # noqa: E402

BUDGETS = (0, 2, 5, 10)
SETS = ("homecare", "youth", "example")
NO_THEME = "unassigned"


def prepare(bench, config, embedder) -> dict:
    """The fitted ThemeModel and everything a round needs, for one corpus."""
    personas = load_personas(bench.persona_path) if bench.persona_path else []
    texts = theme_texts(bench.notes["text"].tolist(), personas, config.privacy.names)
    vectors = embedder.encode(texts, kind="query")
    groups = bench.notes[[c for c in bench.groups if c in bench.notes.columns]].astype(str).reset_index(drop=True)
    seeds = load_seed_themes(bench.seed_path)
    seed_vectors = seed_prototypes(seeds, embedder, config.themes.seed_text)
    lexical = seed_lexical_scores(texts, bench.notes["lang"].astype(str).tolist(), seeds)
    model = theme_model_from_config(config)
    model.fit(vectors, groups=groups, seed_vectors=seed_vectors, seed_ids=[s.id for s in seeds], seed_lexical=lexical)
    examples, example_themes = seed_example_vectors(seeds, embedder)
    gold = bench.notes["gold_theme"].astype(str).to_numpy()
    return {"model": model, "centred": model.centre(vectors, groups), "evidence": model.lexical_evidence(lexical),
            "seed_vectors": seed_vectors, "examples": examples, "example_themes": example_themes,
            "note_ids": bench.notes["note_id"].astype(str).tolist(), "gold": gold}


def one_round(data: dict, confirmed: dict[int, str]) -> tuple[np.ndarray, dict]:
    """Predicted theme of every note after learning from ``confirmed`` (row -> gold theme)."""
    ids = data["note_ids"]
    overrides = Overrides(pin=tuple({"note": ids[r], "theme": t} for r, t in confirmed.items() if t != "other"),
                          exclude=tuple({"note": ids[r]} for r, t in confirmed.items() if t == "other"))
    model = copy.deepcopy(data["model"])
    learning = learn(model, data["centred"], ids, overrides, seed_vectors=data["seed_vectors"],
                     examples=data["examples"], example_themes=data["example_themes"], evidence=data["evidence"])
    # The run's answer (the notes the decisions reach take the learner's theme, the rest keep the
    # model's); a candidate new theme never matches a gold id, so it counts as no theme.
    predicted = np.where(model.status_ == "assigned", model.labels_, NO_THEME)
    return predicted.astype(str), learning


def loop(data: dict, pick, budgets=BUDGETS) -> dict:
    gold = np.where(data["gold"] == "other", NO_THEME, data["gold"])
    n_themes = len(np.unique(gold))
    order = np.argsort(np.asarray(data["note_ids"]), kind="stable")
    confirmed: dict[int, str] = {}
    predicted, learning = one_round(data, confirmed)
    out = {}
    for budget in budgets:
        while len(confirmed) < budget * n_themes:
            for row in pick(data, learning, confirmed, min(n_themes, budget * n_themes - len(confirmed)), order):
                confirmed[int(row)] = str(data["gold"][row])
            predicted, learning = one_round(data, confirmed)
        rest = np.ones(len(gold), dtype=bool)
        rest[list(confirmed)] = False
        out[budget] = {"kappa": float(cohen_kappa_score(gold[rest], predicted[rest])),
                       "accuracy": float(accuracy_score(gold[rest], predicted[rest])),
                       "macro_f1": float(f1_score(gold[rest], predicted[rest], average="macro", zero_division=0)),
                       "confirmed": len(confirmed)}
    return out


def queue_pick(data, learning, confirmed, k, order):
    """The review queue's top ``k`` (rows in note-id order, as ``analysis.review`` does)."""
    centred = data["centred"][order]
    references = np.vstack([data["centred"][sorted(confirmed)] if confirmed else np.zeros((0, centred.shape[1])),
                            learning["example_vectors"]])
    open_rows = ~np.isin(order, list(confirmed))
    picks = queue_rows(centred, learning["learner"].margins_[order], references, open_rows, k)
    return [order[p[0]] for p in picks]


def random_pick(seed):
    rng = np.random.default_rng(seed)

    def pick(data, learning, confirmed, k, order):
        rest = np.array([r for r in range(len(data["gold"])) if r not in confirmed])
        return rng.choice(rest, k, replace=False)
    return pick


def zero_confirmed(data: dict) -> dict:
    """With nothing confirmed: the ThemeModel's answer, the learner's (seed examples and
    descriptions as its only labels) on every note, and the learner's on the notes the model
    gave a seed theme only (the others keep the model's: unassigned or a candidate theme)."""
    gold = np.where(data["gold"] == "other", NO_THEME, data["gold"]).astype(str)
    model = copy.deepcopy(data["model"])
    own = np.where(model.status_ == "assigned", model.labels_, NO_THEME).astype(str)
    learning = learn(model, data["centred"], data["note_ids"], None, seed_vectors=data["seed_vectors"],
                     examples=data["examples"], example_themes=data["example_themes"], evidence=data["evidence"])
    learnt = np.asarray(learning["learner"].labels_, dtype=object).astype(str)
    answers = {"model": own, "learner, every note": learnt,
               "learner, the model's seed-theme notes": np.where(model.status_ == "assigned", learnt, NO_THEME)}
    return {name: {"kappa": float(cohen_kappa_score(gold, answer)), "accuracy": float(accuracy_score(gold, answer)),
                   "macro_f1": float(f1_score(gold, answer, average="macro", zero_division=0))}
            for name, answer in answers.items()}


def time_round(shared: Path, config) -> float:
    """Wall time of one `pipeline.run` on homecare_nordic with 5 pins per theme (embeddings cached)."""
    from analysis.load import load_notes
    from analysis.pipeline import run

    base = shared / "devsets" / "homecare_nordic"
    notes = load_notes([base / "notes.csv"], root=base)
    lines = ["pin:"]
    for theme, group in notes[notes["gold_theme"].fillna("").ne("")].groupby("gold_theme"):
        if theme != "other":
            lines += [f"  - {{note: {note}, theme: {theme}}}" for note in sorted(group["note_id"])[:5]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "overrides.yml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kwargs = dict(notes_paths=[base / "notes.csv"], seed_themes_path=base / "seed_themes.yml",
                      personas_path=base / "personas.yml", overrides_path=path, progress=False)
        run(config, **kwargs)  # warm the embedding cache
        start = time.perf_counter()
        run(config, **kwargs)
        return time.perf_counter() - start


def first_decisions(config) -> dict:
    """Notes (other than the decided ones) whose theme or status changes after a first decision."""
    import yaml

    from analysis.pipeline import run

    config = load_config(ROOT / "analysis.toml", paths={"personas": "", "overrides": ""})
    base = run(config, progress=False)
    themed = base.assignments[base.assignments["status"].isin(["assigned", "new_theme"])]
    close = themed[themed["secondary_theme_id"].ne("")].sort_values(["theme_margin", "note_id"])
    weakest = themed.sort_values(["theme_score", "note_id"]).iloc[0]["note_id"]
    pins = [{"note": r.note_id, "theme": r.secondary_theme_id} for r in close.head(4).itertuples()]
    cases = {"1 pin": {"pin": pins[:1]}, "1 exclusion": {"exclude": [{"note": weakest}]}, "4 pins": {"pin": pins},
             "1 pin + 1 exclusion": {"pin": pins[:1], "exclude": [{"note": weakest}]}}
    before = base.assignments.set_index("note_id")[["theme_id", "status"]]
    out = {"notes": len(before)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, entries in cases.items():
            path = Path(tmp) / "overrides.yml"
            path.write_text(yaml.safe_dump(entries), encoding="utf-8")
            after = run(config, progress=False, overrides_path=path).assignments.set_index("note_id")
            after = after.loc[before.index, ["theme_id", "status"]]
            decided = {e["note"] for values in entries.values() for e in values}
            rest = ~before.index.isin(decided) & before["status"].isin(["assigned", "new_theme", "unassigned"])
            moved = (before["theme_id"] != after["theme_id"])[rest]
            out[name] = {"moved": int(moved.sum()),
                         "to_no_theme": int((moved & after["theme_id"].eq("")[rest]).sum()),
                         "new_themes_before": int(before["status"].eq("new_theme").sum()),
                         "new_themes_after": int(after["status"].eq("new_theme").sum())}
            print(f"example  {name:20s} moved {out[name]['moved']:3d} of {rest.sum()} "
                  f"(to no theme {out[name]['to_no_theme']}); notes in candidate new themes "
                  f"{out[name]['new_themes_before']} -> {out[name]['new_themes_after']}", flush=True)
    return out


def figure(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), sharey=True)
    for ax, (name, curves) in zip(np.atleast_1d(axes), results.items()):
        for label, style in (("queue", "-o"), ("random", "--s")):
            ax.plot(BUDGETS, [curves[label][str(b)]["kappa"] for b in BUDGETS], style, label=label)
        ax.axhline(0.58, color="grey", lw=0.8, ls=":")
        ax.set_title(name)
        ax.set_xlabel("confirmed notes per theme")
    np.atleast_1d(axes)[0].set_ylabel("kappa on unconfirmed notes")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--zero", action="store_true", help="only compare model and learner with no note confirmed")
    parser.add_argument("--moves", action="store_true", help="only count the notes a first decision moves")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/review_loop.json")
    parser.add_argument("--figure", type=Path, default=ROOT / "benchmarks/results/review_loop.png")
    args = parser.parse_args()
    config = load_config(ROOT / "analysis.toml")
    if args.moves:
        first_decisions(config)
        return
    embedder = build_embedder(config, progress=False)
    loaders = suite_sets(args.shared)
    results = {}
    for name in args.sets:
        data = prepare(loaders[name](), config, embedder)
        if args.zero:
            for answer, scores in zero_confirmed(data).items():
                print(f"{name:9s} 0 confirmed  {answer:38s} kappa {scores['kappa']:.3f} acc {scores['accuracy']:.3f} "
                      f"F1 {scores['macro_f1']:.3f}", flush=True)
            continue
        queue = loop(data, queue_pick)
        draws = [loop(data, random_pick(seed)) for seed in range(args.draws)]
        random = {b: {key: float(np.mean([d[b][key] for d in draws])) for key in queue[b]} for b in BUDGETS}
        results[name] = {"queue": {str(b): v for b, v in queue.items()}, "random": {str(b): v for b, v in random.items()}}
        for b in BUDGETS:
            q, r = queue[b], random[b]
            print(f"{name:9s} {b:2d}/theme  queue kappa {q['kappa']:.3f} acc {q['accuracy']:.3f} F1 {q['macro_f1']:.3f}"
                  f"   random kappa {r['kappa']:.3f} acc {r['accuracy']:.3f} F1 {r['macro_f1']:.3f}", flush=True)
    if args.zero:
        return
    record = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "draws": args.draws, "results": results}
    if args.time:
        record["round_seconds_homecare_320"] = time_round(args.shared, config)
        print(f"one round (pipeline.run, 320 notes, cached embeddings): {record['round_seconds_homecare_320']:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    figure(results, args.figure)


if __name__ == "__main__":
    main()
