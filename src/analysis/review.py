"""The review queue: the notes whose decision would teach the model most, and how to decide them.

Every run writes ``review_queue.csv`` and ``analysis review`` prints it. A note ranks high when
the learner (``analysis.learn``) is unsure between its first two themes (a small margin) and
when it is far from every confirmed note and seed example; notes of candidate new themes are
said so. The queue is picked greedily and is diverse: after each pick, notes within a cosine of
``duplicate_cosine`` of it are skipped, and the pick counts as a confirmed note for the
distance of the rest. The weights were chosen on ``benchmarks/review_loop.py`` by the worst
corpus (benchmarks/README.md, "Review loop").

Deciding a note is one line in the overrides file, under ``pin:`` (or ``exclude:`` for a note
that belongs to no theme)::

    pin:
      - {note: H-017, theme: medication}
      - {note: H-104, theme: social_community, name: "Sosialt fellesskap"}   # a new theme

``add_pin`` writes that line (``analysis review --accept NOTE_ID THEME``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.learn import EXCLUDED
from analysis.overrides import OverridesFileError, load_overrides

QUEUE_COLUMNS = ["rank", "note_id", "text", "theme_id", "theme_score", "runner_up_theme_id", "runner_up_score",
                 "reason"]
#: Weight of "far from every confirmed note" next to the margin's rank (benchmarks/README.md).
DISTANCE_WEIGHT = 0.3
DUPLICATE_COSINE = 0.9
#: How many notes a run writes to review_queue.csv (``analysis review --n`` asks for any number).
QUEUE_SIZE = 50


def _rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1]; ties keep the rows' order (the caller orders rows by note id)."""
    if len(values) < 2:
        return np.zeros(len(values))
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (len(values) - 1)


def queue_rows(centred: np.ndarray, margins: np.ndarray, references: np.ndarray, available: np.ndarray, n: int,
               distance_weight: float = DISTANCE_WEIGHT, duplicate_cosine: float = DUPLICATE_COSINE
               ) -> list[tuple[int, float, float]]:
    """Rows to review, best first, each with its margin rank share and nearest confirmed cosine.

    ``references`` are the confirmed notes' and seed examples' centred vectors. Rows must be in
    note-id order for ties to be broken the same way whatever the input order.
    """
    nearest = (centred @ references.T).max(axis=1) if len(references) else np.full(len(centred), -1.0)
    uncertainty = 1 - _rank01(margins)
    open_rows = np.asarray(available, dtype=bool).copy()
    picks = []
    for _ in range(min(n, int(open_rows.sum()))):
        value = uncertainty + distance_weight * _rank01(1 - nearest)
        candidates = open_rows & ~np.isin(np.arange(len(centred)), [p[0] for p in picks])
        if not candidates.any():
            break
        row = int(np.argmax(np.where(candidates, value, -np.inf)))
        picks.append((row, float(uncertainty[row]), float(nearest[row])))
        similar = centred @ centred[row]
        nearest = np.maximum(nearest, similar)
        near_duplicates = similar >= duplicate_cosine
        if (open_rows & ~near_duplicates).sum() > len(picks):
            open_rows &= ~near_duplicates
    return picks


def review_queue(notes: pd.DataFrame, centred: np.ndarray, learning: dict, statuses,
                 n: int | None = 20, attributes=()) -> pd.DataFrame:
    """The queue as a table (``QUEUE_COLUMNS`` plus ``attributes``) for the analysable ``notes``
    (rows in the order of ``centred``), from ``analysis.learn.learn``'s result.

    ``statuses`` are each note's status in the run; notes the
    analyst already decided (pinned or excluded) never enter the queue. ``n=None``: every note.
    """
    learner = learning["learner"]
    ids = notes["note_id"].astype(str).to_numpy()
    order = np.argsort(ids, kind="stable")
    decided = np.zeros(len(ids), dtype=bool)
    decided[learning["rows"]] = True
    decided |= np.isin(np.asarray(statuses, dtype=object), ["pinned", "excluded"])
    references = [centred[learning["rows"]]]
    if learning.get("example_vectors") is not None and len(learning["example_vectors"]):
        references.append(learning["example_vectors"])
    picks = queue_rows(centred[order], learner.margins_[order], np.vstack(references), ~decided[order],
                       len(ids) if n is None else n)
    classes = np.asarray(learner.classes_, dtype=object)
    texts = notes["text"].tolist()
    kept = [a for a in attributes if a in notes.columns]
    values = {a: notes[a].tolist() for a in kept}
    rows = []
    for rank, (position, uncertainty, nearest) in enumerate(picks, start=1):
        i = order[position]
        ranked = np.argsort(-learner.proba_[i], kind="stable")
        best = ranked[0]
        second = ranked[1] if len(ranked) > 1 else None   # one theme only: no runner-up
        runner_up = classes[second] if second is not None else ""
        why = (f"uncertain between {classes[best]} and {runner_up}" if uncertainty >= 0.5 and runner_up
               else f"far from every confirmed note and seed example (closest cosine {nearest:.2f})")
        if learning["candidates"][i]:
            why = f"candidate new theme {learning['candidates'][i]}; {why}"
        rows.append({"rank": rank, "note_id": ids[i], "text": texts[i], "theme_id": classes[best],
                     "theme_score": round(float(learner.proba_[i, best]), 4), "runner_up_theme_id": runner_up,
                     "runner_up_score": round(float(learner.proba_[i, second]), 4) if second is not None else float("nan"), "reason": why,
                     **{a: values[a][i] for a in kept}})
    return pd.DataFrame(rows, columns=[*QUEUE_COLUMNS, *kept])


def confirmed_counts_line(learning: dict) -> str:
    """'confirmed notes per theme: a 3 (+2 examples), ...' for the run's summary."""
    parts = []
    for theme, count in learning["confirmed"].items():
        if not (count["notes"] or count["examples"]):
            continue
        extra = f" (+{count['examples']} examples)" if count["examples"] else ""
        parts.append(f"{'excluded' if theme == EXCLUDED else theme} {count['notes']}{extra}")
    state = "the model learnt from them" if learning["applied"] else "none yet; the model's own themes stand"
    return f"confirmed notes per theme ({state}): " + (", ".join(parts) or "none")


# --- writing a decision ---------------------------------------------------------------------


def pin_line(note_id: str, theme: str, name: str | None = None) -> str:
    """One overrides entry, as the file documents it: ``{note: ..., theme: ..., name: ...}``."""
    entry = {"note": str(note_id), "theme": str(theme), **({"name": str(name)} if name else {})}
    return yaml.safe_dump(entry, default_flow_style=True, allow_unicode=True, width=1000).strip()


def add_pin(path: str | Path, note_id: str, theme: str, name: str | None = None) -> str:
    """Pin ``note_id`` to ``theme`` in the overrides file at ``path`` (created if missing), keeping
    its comments; a one-line pin of the same note is replaced. Returns the line written."""
    path = Path(path)
    if not re.fullmatch(r"[\w.\-]+", str(theme)):
        raise OverridesFileError(f"--accept {note_id} {theme}: a theme id uses letters, digits, '_', '-' "
                                 "and '.' only; give the theme's name with --name.")
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if path.is_file():
        load_overrides(path)  # refuse to edit a file that is already broken
    entry = "  - " + pin_line(note_id, theme, name)
    lines = text.splitlines()
    same_note = re.compile(r"^\s+-\s*\{\s*note:\s*['\"]?" + re.escape(str(note_id)) + r"['\"]?\s*,.*\}\s*$")
    start = next((i for i, line in enumerate(lines) if re.match(r"^pin:", line)), None)
    if start is None:
        lines += ["pin:", entry]
    elif re.match(r"^pin:\s*\[\]\s*$", lines[start]):
        lines[start:start + 1] = ["pin:", entry]
    elif re.match(r"^pin:\s*(#.*)?$", lines[start]):
        end = start + 1
        while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
            end += 1
        block = [i for i in range(start + 1, end) if same_note.match(lines[i])]
        if block:
            lines[block[0]] = entry
        else:
            last = max([i for i in range(start + 1, end) if lines[i].strip()], default=start)
            lines.insert(last + 1, entry)
    else:
        raise OverridesFileError(f"{path}: the 'pin:' line holds entries on the same line; write each pin on "
                                 f"its own line (as '{entry.strip()}') and run again.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_overrides(path)
    return entry.strip()
