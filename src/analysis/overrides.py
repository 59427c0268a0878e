"""The analyst's overrides: rename, merge and split themes; pin or exclude notes.

An analyst reads the themes and disagrees with some of them. Instead of editing outputs by
hand (and losing the edit at the next run), they write ``data/overrides.yml``:

.. code-block:: yaml

    exclude: [{note: M-033, reason: same note as M-032}]
    pin:     [{note: B1-014, theme: fixed_team}]
    merge:   [{themes: [new_01, new_04], into: meals, name: Måltider}]
    split:   [{theme: leadership, into: 2}]
    rename:  [{theme: new_02, name: Seniornettverk}]

Every run applies the file in that order (exclude, pin, merge, split, rename) to the fitted
``ThemeModel``, so keywords, quotes, persona tables and exports all see the analyst's themes.
An override that no longer matches anything (a note id or theme id that is gone) is not an
error: it is reported as ``stale`` in ``overrides_report.json`` and in the run's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.files import read_yaml
from analysis.schema import STATUS_ASSIGNED, STATUS_EXCLUDED, STATUS_NEW_THEME, STATUS_PINNED

OPERATIONS = ("exclude", "pin", "merge", "split", "rename")
_REQUIRED = {
    "exclude": ("note",),
    "pin": ("note", "theme"),
    "merge": ("themes", "into"),
    "split": ("theme", "into"),
    "rename": ("theme", "name"),
}


class OverridesFileError(ValueError):
    """The overrides file cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class Overrides:
    source: str = ""
    exclude: tuple[dict, ...] = ()
    pin: tuple[dict, ...] = ()
    merge: tuple[dict, ...] = ()
    split: tuple[dict, ...] = ()
    rename: tuple[dict, ...] = ()

    def __len__(self) -> int:
        return sum(len(getattr(self, op)) for op in OPERATIONS)


def load_overrides(path: str | Path) -> Overrides:
    """Read and check an overrides YAML file. An empty file means no overrides."""
    path = Path(path)
    if not path.is_file():
        raise OverridesFileError(f"{path}: overrides file not found. Create it (it may be empty) or set "
                                 f'[paths] overrides = "" in the config.')
    data = read_yaml(path, OverridesFileError, "overrides")[0] or {}
    if not isinstance(data, dict):
        raise OverridesFileError(f"{path}: expected a mapping with keys {list(OPERATIONS)}.")
    unknown = sorted(set(data) - set(OPERATIONS))
    if unknown:
        raise OverridesFileError(f"{path}: unknown key(s) {unknown}; use {list(OPERATIONS)}.")
    entries = {}
    for op in OPERATIONS:
        items = data.get(op) or []
        if not isinstance(items, list):
            raise OverridesFileError(f"{path}: '{op}' must be a list of entries.")
        for i, item in enumerate(items, start=1):
            missing = [k for k in _REQUIRED[op] if not isinstance(item, dict) or item.get(k) in (None, "")]
            if missing:
                raise OverridesFileError(f"{path}: {op} entry {i} lacks {missing}; "
                                         f"each {op} entry needs {list(_REQUIRED[op])}.")
        entries[op] = tuple({k: v for k, v in item.items()} for item in items)
    for i, item in enumerate(entries["split"], start=1):
        into = item["into"]
        if not ((isinstance(into, int) and into >= 2) or (isinstance(into, list) and len(into) >= 2)):
            raise OverridesFileError(f"{path}: split entry {i}: 'into' must be a number ≥ 2 or a list of "
                                     f"at least two new theme ids.")
    for i, item in enumerate(entries["merge"], start=1):
        if not isinstance(item["themes"], list) or len(item["themes"]) < 2:
            raise OverridesFileError(f"{path}: merge entry {i}: 'themes' must list at least two theme ids.")
    return Overrides(source=str(path), **entries)


@dataclass
class _State:
    """The assignment being edited: one row per analysable note."""
    note_ids: np.ndarray
    labels: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    themes: pd.DataFrame          # theme_id, kind
    origins: dict = field(default_factory=dict)  # theme id -> the fitted seed themes it holds
    names: dict = field(default_factory=dict)
    report: list = field(default_factory=list)

    def theme_ids(self) -> list[str]:
        return self.themes["theme_id"].tolist()

    def log(self, op: str, entry: dict, state: str, detail: str) -> None:
        self.report.append({"operation": op, "entry": {k: str(v) for k, v in entry.items()},
                            "state": state, "detail": detail})


def apply_overrides(model, centred: np.ndarray, note_ids, overrides: Overrides,
                    random_state: int = 0, evidence: np.ndarray | None = None) -> dict:
    """Apply ``overrides`` to a fitted ``ThemeModel`` in place; return names and a report.

    ``centred`` are the notes' vectors in the model's centred space (``model.centre``), in the
    same order as ``note_ids`` and ``model.labels_``. ``evidence`` is the lexical evidence the
    fit added to the seed themes' scores (``model.lexical_evidence(seed_lexical)``, one column
    per seed theme); the notes are rescored with it, so scores and margins stay on the fit's
    scale. Returns ``{"names": {theme_id: name}, "report": [...]}`` where each report entry
    has a ``state`` of ``applied`` or ``stale``.
    """
    themes = model.themes_[["theme_id", "kind"]].copy()
    state = _State(note_ids=np.asarray(note_ids, dtype=object), labels=model.labels_.copy(),
                   status=model.status_.copy(), reason=model.reason_.copy(), themes=themes,
                   origins={t: ({t} if kind == "seed" else set()) for t, kind in
                            zip(themes["theme_id"], themes["kind"])})
    for entry in overrides.exclude:
        _exclude(state, entry, overrides.source)
    for entry in overrides.pin:
        _pin(state, entry, overrides.source)
    for entry in overrides.merge:
        _merge(state, entry)
    for entry in overrides.split:
        _split(state, entry, centred, random_state)
    for entry in overrides.rename:
        _rename(state, entry)
    if len(overrides):
        _refit_model(model, state, centred, evidence)
    return {"names": state.names, "report": state.report}


def _rows_of(state: _State, note_id) -> np.ndarray:
    return np.flatnonzero(state.note_ids == str(note_id))


def _exclude(state: _State, entry: dict, source: str) -> None:
    rows = _rows_of(state, entry["note"])
    if not len(rows):
        state.log("exclude", entry, "stale", f"no analysable note has id {entry['note']}")
        return
    why = entry.get("reason") or "no reason given"
    state.labels[rows] = ""
    state.status[rows] = STATUS_EXCLUDED
    state.reason[rows] = f"excluded by the analyst ({Path(source).name}): {why}"
    state.log("exclude", entry, "applied", f"note {entry['note']} excluded")


def _pin(state: _State, entry: dict, source: str) -> None:
    rows = _rows_of(state, entry["note"])
    theme = str(entry["theme"])
    if not len(rows):
        state.log("pin", entry, "stale", f"no analysable note has id {entry['note']}")
        return
    if theme not in state.theme_ids():
        state.log("pin", entry, "stale", f"theme {theme} does not exist in this run")
        return
    if state.status[rows[0]] == STATUS_EXCLUDED:
        state.log("pin", entry, "stale", f"note {entry['note']} is excluded by another override")
        return
    before = state.labels[rows[0]] or "no theme"
    state.labels[rows] = theme
    state.status[rows] = STATUS_PINNED
    state.reason[rows] = f"pinned by the analyst ({Path(source).name}); the model said {before}"
    state.log("pin", entry, "applied", f"note {entry['note']}: {before} -> {theme}")


def _merge(state: _State, entry: dict) -> None:
    sources = [str(t) for t in entry["themes"]]
    into = str(entry["into"])
    present = [t for t in sources if t in state.theme_ids()]
    gone = [t for t in sources if t not in present]
    if len(present) < 2 and not (present and into not in present):
        state.log("merge", entry, "stale", f"theme(s) {gone} do not exist in this run; nothing to merge")
        return
    kinds = dict(zip(state.themes["theme_id"], state.themes["kind"]))
    kind = kinds.get(into) or kinds[present[0]]
    moved = np.isin(state.labels, present)
    state.labels[moved] = into
    keep = state.themes[~state.themes["theme_id"].isin([t for t in present if t != into])]
    if into not in keep["theme_id"].tolist():
        keep = pd.concat([keep, pd.DataFrame({"theme_id": [into], "kind": [kind]})], ignore_index=True)
    state.themes = keep.reset_index(drop=True)
    state.origins[into] = set().union(*(state.origins.get(t, set()) for t in [*present, into]))
    if entry.get("name"):
        state.names[into] = str(entry["name"])
    detail = f"{present} -> {into} ({int(moved.sum())} notes)"
    state.log("merge", entry, "applied" if not gone else "stale",
              detail if not gone else f"{detail}; theme(s) {gone} no longer exist")


def _split(state: _State, entry: dict, centred: np.ndarray, random_state: int) -> None:
    theme = str(entry["theme"])
    into = entry["into"]
    parts = [str(p) for p in into] if isinstance(into, list) else [f"{theme}.{i + 1}" for i in range(into)]
    members = np.flatnonzero((state.labels == theme) & (state.status != STATUS_PINNED))
    if theme not in state.theme_ids():
        state.log("split", entry, "stale", f"theme {theme} does not exist in this run")
        return
    if len(members) < len(parts):
        state.log("split", entry, "stale", f"theme {theme} has {len(members)} note(s), too few for {len(parts)} parts")
        return
    from sklearn.cluster import KMeans

    clusters = KMeans(len(parts), n_init=10, random_state=random_state).fit_predict(centred[members])
    # Number the parts by size, then by their first note id, so the ids do not depend on k-means' labels.
    order = sorted(range(len(parts)), key=lambda c: (-int((clusters == c).sum()),
                                                     min(state.note_ids[members[clusters == c]])))
    kind = dict(zip(state.themes["theme_id"], state.themes["kind"]))[theme]
    for part, cluster in zip(parts, order):
        state.labels[members[clusters == cluster]] = part
    rest = state.themes[state.themes["theme_id"] != theme]
    state.themes = pd.concat([rest, pd.DataFrame({"theme_id": parts, "kind": kind})], ignore_index=True)
    for part in parts:
        state.origins[part] = set(state.origins.get(theme, set()))
    sizes = [int((clusters == c).sum()) for c in order]
    state.log("split", entry, "applied", f"{theme} -> {dict(zip(parts, sizes))}")


def _rename(state: _State, entry: dict) -> None:
    theme = str(entry["theme"])
    if theme not in state.theme_ids():
        state.log("rename", entry, "stale", f"theme {theme} does not exist in this run")
        return
    state.names[theme] = str(entry["name"])
    state.log("rename", entry, "applied", f"{theme} is now called {entry['name']!r}")


def _refit_model(model, state: _State, centred: np.ndarray, evidence: np.ndarray | None = None) -> None:
    """Give the model the analyst's themes, and rescore every note against them.

    A theme whose notes the overrides left as they were keeps the fitted prototype; a theme
    they changed gets the centroid of its final notes. A theme made of seed themes (itself,
    a merge, or a part of a split) keeps their lexical evidence: the best of its seeds'.
    """
    old = dict(zip(model.themes_["theme_id"], model.prototypes_))
    ids = state.theme_ids()
    prototypes = []
    for theme in ids:
        rows = state.labels == theme
        if theme in old and (not rows.any() or np.array_equal(rows, model.labels_ == theme)):
            prototypes.append(old[theme])  # the overrides left its notes as they were
            continue
        centroid = centred[rows].mean(axis=0)
        prototypes.append(centroid / (np.linalg.norm(centroid) or 1.0))
    theme_evidence = _theme_evidence(model.themes_["theme_id"].tolist(), evidence, ids, state.origins)
    labels, status = state.labels, state.status.copy()
    kinds = dict(zip(state.themes["theme_id"], state.themes["kind"]))
    moved = np.isin(status, [STATUS_ASSIGNED, STATUS_NEW_THEME])
    status[moved] = [STATUS_ASSIGNED if kinds.get(t) == "seed" else STATUS_NEW_THEME for t in labels[moved]]
    model.reassign(centred, labels, status, state.reason, state.themes, prototypes, theme_evidence)


def _theme_evidence(fitted_ids: list[str], evidence: np.ndarray | None, ids: list[str],
                    origins: dict) -> np.ndarray | None:
    """(n, len(ids)) evidence for the final themes from the fit's per-seed evidence columns."""
    if evidence is None or evidence.shape[1] == 0:
        return None
    column = {theme: j for j, theme in enumerate(fitted_ids[:evidence.shape[1]])}
    out = np.zeros((len(evidence), len(ids)))
    for j, theme in enumerate(ids):
        sources = sorted(column[t] for t in origins.get(theme, ()) if t in column)
        if sources:
            out[:, j] = evidence[:, sources].max(axis=1)
    return out
