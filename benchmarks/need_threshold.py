"""Need coverage: a fixed cosine threshold against the corpus-relative rule, on every set with personas.

For each corpus (the example, both devsets, the first-hour fixture) it runs the pipeline once and
counts, per rule, the needs flagged as gaps and the (need, note) pairs counted as support, and
for each gap whether a theme of at least 5 notes holds the need's nearest note (a gap "next to
a theme": the symptom of issue 13). Run from the repository root:

    PYTHONPATH=src .venv/bin/python benchmarks/need_threshold.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

from analysis import pipeline
from analysis.config import load_config
from analysis.personas import _need_support_pairs, need_coverage, need_support

ROOT = Path(__file__).resolve().parents[1]
#: ../shared next to the repository (or next to a folder holding it, e.g. a git worktree).
SHARED = next((parent / "shared" for parent in ROOT.parents if (parent / "shared" / "devsets").is_dir()),
              ROOT.parent / "shared")
FIXED = 0.35


def corpora(folder: Path) -> dict[str, Path]:
    sets = {"example": ROOT / "analysis.toml"}
    for name, notes, seeds, personas in (
            ("youth_leisure", "notes.csv", "seed_themes.yml", "personas.yml"),
            ("homecare_nordic", "notes.csv", "seed_themes.yml", "personas.yml")):
        base = SHARED / "devsets" / name
        config = folder / f"{name}.toml"
        config.write_text(f'[paths]\nnotes = ["{base / notes}"]\nseed_themes = "{base / seeds}"\n'
                          f'personas = "{base / personas}"\noverrides = ""\nout = "{folder / name}"\n'
                          f'cache = "{ROOT / "data" / "processed" / "cache"}"\n', encoding="utf-8")
        sets[name] = config
    fixture = ROOT / "tests" / "fixtures" / "own_workshop"
    config = folder / "own_workshop.toml"
    config.write_text(f'[paths]\nnotes = ["{fixture / "workshop_bibliotek.csv"}"]\nseed_themes = "{fixture / "codebook.yml"}"\n'
                      f'personas = "{fixture / "personas.yml"}"\noverrides = ""\nout = "{folder / "own"}"\n'
                      f'cache = "{ROOT / "data" / "processed" / "cache"}"\n', encoding="utf-8")
    sets["own_workshop"] = config
    return sets


def gaps_next_to_themes(coverage: pd.DataFrame, themed: pd.DataFrame) -> int:
    sizes = themed["theme_id"].value_counts()
    theme_of = dict(zip(themed["note_id"], themed["theme_id"]))
    gaps = coverage[coverage["gap"]]
    return int(sum(sizes.get(theme_of.get(note, ""), 0) >= 5 for note in gaps["best_note_id"]))


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in corpora(Path(tmp)).items():
            config = load_config(path)
            result = pipeline.run(config, progress=False)
            # The run's own centred vectors, as the pipeline uses them (only the needs are embedded).
            space = pipeline.note_space(result, pipeline.build_embedder(config, progress=False))
            support = need_support(result.personas, result.assignments, space, result.notes)
            n_needs = sum(len(p.needs) for p in result.personas)
            for rule, threshold in ((f"fixed {FIXED}", FIXED), ("relative (theme-level z)", None)):
                coverage = need_coverage(result.personas, result.assignments, space, threshold, support=support)
                rows.append({"corpus": name, "notes": len(result.notes), "needs": n_needs, "rule": rule,
                             "gaps": int(coverage["gap"].sum()),
                             "gaps_next_to_a_5+_theme": gaps_next_to_themes(coverage, result.assignments),
                             "supporting_pairs": len(_need_support_pairs(support, threshold))})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
