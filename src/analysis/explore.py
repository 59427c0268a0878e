"""Describing the notes before theming them: what came in, from where, and what the loader decided.

Counts by site, source, workshop, role, language and persona tag; note lengths; exact and
near-duplicate notes; the loader's statuses, flags, language sources and per-file findings.
Also the few note-level views the theme notebook needs (centred vectors, a 2-D projection,
theme tables with quotes, and what an analyst's overrides changed between two runs). Every
function takes the notes table from ``load.load_notes`` (or a run's ``RunResult``) and returns
a new DataFrame; nothing here changes a note's text.

Quotes and duplicate listings pass through ``withhold_contact_details``: a note that contains an
e-mail address or a phone number is shown as a placeholder, never as written.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.load import (FLAG_DERIVED_ID, FLAG_DUPLICATE_ID, FLAG_EXTRA_CELLS, FLAG_LONG_TEXT,
                           FLAG_UNKNOWN_LANG, LONG_TEXT_CHARS)
from analysis.schema import STATUS_OK
from analysis.text import normalise

BLANK = "(blank)"
WITHHELD = "[withheld: contains contact details]"

#: What each loader flag means, in the words an analyst needs.
FLAG_MEANINGS = {
    FLAG_DUPLICATE_ID: "the note_id was already used by an earlier row; this row got a '~r<row>' suffix",
    FLAG_DERIVED_ID: "the row had no note_id; a stable id was derived from the file and row",
    FLAG_EXTRA_CELLS: "the row had more cells than the header; the extra cells were dropped",
    FLAG_LONG_TEXT: f"the text is longer than {LONG_TEXT_CHARS} characters (probably a pasted document)",
    FLAG_UNKNOWN_LANG: "the language could not be determined (lang = und)",
}

#: Where each note's language came from (the ``lang_source`` column).
LANGUAGE_SOURCES = {
    "column": "the file's lang column",
    "front_matter": "the document's YAML front matter",
    "detected": "detected by py3langid with confidence >= 0.5",
    "file_majority": "detection unsure; the file's majority language",
    "undetermined": "no language could be given (e.g. empty text)",
}

_EMAIL = re.compile(r"@")
#: A phone-like number: 8 or more digits, with at most one space, dash, dot or slash between
#: two digits ("0501-123456", "+47 912 34 567", "98765432"), not part of a longer word.
_PHONE = re.compile(r"(?<![\w+])\+?\d(?:[ \-./]?\d){7,}(?!\w)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --------------------------------------------------------------------------- privacy guard


def has_contact_details(text: str) -> bool:
    """True when the text holds an '@' or a phone-like number (8+ digits, not an ISO date)."""
    text = text if isinstance(text, str) else ""
    if _EMAIL.search(text):
        return True
    return any(not _ISO_DATE.fullmatch(match.group()) for match in _PHONE.finditer(text))


def withhold_contact_details(frame: pd.DataFrame, columns: Sequence[str] = ("text",)) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells with contact details are replaced by a placeholder."""
    shown = frame.copy()
    for column in columns:
        if column in shown.columns:
            values = shown[column].fillna("").astype(str)
            shown[column] = values.where(~values.map(has_contact_details), WITHHELD)
    return shown


# --------------------------------------------------------------------------- counts


def _filled(values: pd.Series) -> pd.Series:
    values = values.fillna("").astype(str).str.strip()
    return values.where(values.ne(""), BLANK)


def _require(notes: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in notes.columns]
    if missing:
        raise KeyError(f"the notes table has no column(s) {missing}; available: {list(notes.columns)}. "
                       "Load the notes with analysis.load.load_notes, or choose another column.")


def counts_by(notes: pd.DataFrame, column: str, by: str | None = None) -> pd.DataFrame:
    """Notes per value of ``column`` (blank cells as '(blank)'), or a ``column`` × ``by`` table.

    One column: a frame with ``notes`` and ``share``, largest first. With ``by``: a count table
    with a ``total`` row and column.
    """
    _require(notes, [column] + ([by] if by else []))
    values = _filled(notes[column])
    if by is None:
        counts = values.value_counts()
        counts = counts.reindex(sorted(counts.index, key=lambda value: (-counts[value], value)))
        table = pd.DataFrame({"notes": counts, "share": (counts / max(len(notes), 1)).round(3)})
        table.index.name = column
        return table
    return pd.crosstab(values.rename(column), _filled(notes[by]).rename(by),
                       margins=True, margins_name="total")


# --------------------------------------------------------------------------- lengths


def note_lengths(notes: pd.DataFrame) -> pd.DataFrame:
    """Characters and words of every note with text (``note_id``, ``source_type``, ``chars``, ``words``)."""
    _require(notes, ["note_id", "text", "status", "source_type"])
    with_text = notes[notes["status"].eq(STATUS_OK)]
    texts = with_text["text"].astype(str).map(normalise)
    return pd.DataFrame({"note_id": with_text["note_id"].to_numpy(),
                         "source_type": with_text["source_type"].to_numpy(),
                         "chars": texts.str.len().to_numpy(),
                         "words": texts.str.split().str.len().to_numpy()})


def length_summary(notes: pd.DataFrame, by: str = "source_type") -> pd.DataFrame:
    """Per group: notes, and the 10th percentile, median, 90th percentile and maximum of words and chars."""
    lengths = note_lengths(notes)
    if by != "source_type":
        _require(notes, [by])
        lengths[by] = _filled(notes.loc[notes["status"].eq(STATUS_OK), by]).to_numpy()
    grouped = lengths.groupby(by, sort=True)
    summary = pd.DataFrame({"notes": grouped.size()})
    for measure in ("words", "chars"):
        summary[f"{measure}_p10"] = grouped[measure].quantile(0.1)
        summary[f"{measure}_median"] = grouped[measure].median()
        summary[f"{measure}_p90"] = grouped[measure].quantile(0.9)
        summary[f"{measure}_max"] = grouped[measure].max()
    return summary


# --------------------------------------------------------------------------- duplicates


def _comparison_key(text: str) -> str:
    return normalise(text if isinstance(text, str) else "").casefold()


def exact_duplicates(notes: pd.DataFrame) -> pd.DataFrame:
    """Notes whose text is the same after normalising whitespace and case, one row per note.

    ``duplicate_group`` numbers the groups (1, 2, …) in note-id order; empty notes are left out.
    """
    _require(notes, ["note_id", "text", "source_file"])
    keys = notes["text"].map(_comparison_key)
    repeated = keys.ne("") & keys.duplicated(keep=False)
    frame = notes.loc[repeated, ["note_id", "source_file"]].copy()
    group_of = {key: number for number, key in enumerate(dict.fromkeys(keys[repeated]), start=1)}
    frame.insert(0, "duplicate_group", keys[repeated].map(group_of).astype("int64"))
    return frame.sort_values(["duplicate_group", "note_id"]).reset_index(drop=True)


def near_duplicates(notes: pd.DataFrame, vectors: np.ndarray, threshold: float = 0.95,
                    context: Sequence[str] = ("source_file",)) -> pd.DataFrame:
    """Pairs of notes whose embeddings have cosine similarity >= ``threshold``, most similar first.

    ``notes`` and ``vectors`` align row by row (unit-length rows, e.g. the analysable notes and
    their e5 vectors). ``identical_text`` marks pairs that are also exact duplicates; each
    ``context`` column is shown for both notes (``<column>_a``, ``<column>_b``).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(notes):
        raise ValueError(f"near_duplicates needs one vector per note: got {len(notes)} notes and an array "
                         f"of shape {vectors.shape}. Pass the vectors of exactly these notes, in this order.")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}; 0.95 is a good start for e5 vectors.")
    _require(notes, ["note_id", "text", *context])
    similarity = vectors @ vectors.T
    first, second = np.nonzero(np.triu(similarity >= threshold, k=1))
    keys = notes["text"].map(_comparison_key).to_numpy()
    ids = notes["note_id"].astype(str).to_numpy()
    pairs = pd.DataFrame({"note_id_a": ids[first], "note_id_b": ids[second],
                          "similarity": np.round(similarity[first, second], 4),
                          "identical_text": keys[first] == keys[second]})
    for column in context:
        values = notes[column].astype(str).to_numpy()
        pairs[f"{column}_a"], pairs[f"{column}_b"] = values[first], values[second]
    return pairs.sort_values(["similarity", "note_id_a", "note_id_b"], ascending=[False, True, True],
                             kind="stable").reset_index(drop=True)


def pair_texts(pairs: pd.DataFrame, notes: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` (from near_duplicates) with both notes' texts, contact details withheld."""
    text = dict(zip(notes["note_id"].astype(str), notes["text"].astype(str).map(normalise)))
    shown = pairs.assign(text_a=pairs["note_id_a"].map(text), text_b=pairs["note_id_b"].map(text))
    return withhold_contact_details(shown, columns=("text_a", "text_b"))


# --------------------------------------------------------------------------- what the loader decided


def status_table(notes: pd.DataFrame) -> pd.DataFrame:
    """Notes per loader status and reason (an empty reason means the note is fine)."""
    _require(notes, ["status", "status_reason"])
    table = notes.groupby(["status", "status_reason"], sort=True).size().rename("notes").reset_index()
    return table.sort_values(["notes", "status"], ascending=[False, True], kind="stable").reset_index(drop=True)


def flag_table(notes: pd.DataFrame) -> pd.DataFrame:
    """Every flag the loader can raise, how many notes carry it, and what it means.

    Flags with zero notes are listed too, so the table shows what was checked, not only what was found.
    """
    _require(notes, ["flags"])
    raised = notes["flags"].fillna("").astype(str).str.split(";").explode()
    counts = raised[raised.ne("")].value_counts()
    names = list(FLAG_MEANINGS) + sorted(set(counts.index) - set(FLAG_MEANINGS))
    return pd.DataFrame({"flag": names, "notes": [int(counts.get(name, 0)) for name in names],
                         "meaning": [FLAG_MEANINGS.get(name, "(no description)") for name in names]})


def language_table(notes: pd.DataFrame) -> pd.DataFrame:
    """Notes per language and per source of that language, with what each source means."""
    _require(notes, ["lang", "lang_source"])
    table = pd.crosstab(notes["lang_source"].astype(str), notes["lang"].astype(str))
    table = table.reindex([s for s in LANGUAGE_SOURCES if s in table.index] +
                          sorted(set(table.index) - set(LANGUAGE_SOURCES)))
    table["total"] = table.sum(axis=1)
    table["meaning"] = [LANGUAGE_SOURCES.get(source, "") for source in table.index]
    return table


def file_table(notes: pd.DataFrame) -> pd.DataFrame:
    """Per input file: units read, empty units, encoding, delimiter and blank rows skipped."""
    _require(notes, ["source_file", "status"])
    attrs = notes.attrs
    grouped = notes.groupby("source_file", sort=True)
    table = pd.DataFrame({"units": grouped.size(),
                          "empty": grouped["status"].apply(lambda s: int(s.ne(STATUS_OK).sum()))})
    table["encoding"] = [attrs.get("encodings", {}).get(f, "") for f in table.index]
    table["delimiter"] = [repr(attrs["delimiters"][f]) if f in attrs.get("delimiters", {}) else ""
                          for f in table.index]
    table["blank_rows_skipped"] = [int(attrs.get("skipped_blank_rows", {}).get(f, 0)) for f in table.index]
    return table


def skipped_files(notes: pd.DataFrame) -> pd.DataFrame:
    """Files found in the input folders but not read, and why."""
    skipped = notes.attrs.get("skipped_files", {})
    return pd.DataFrame({"file": list(skipped), "reason": list(skipped.values())},
                        columns=["file", "reason"])


# --------------------------------------------------------------------------- notes and themes


def centre_groups(result) -> pd.DataFrame:
    """The group columns (``centre_by``) of the notes the run embedded, in the order of ``result.vectors``."""
    if getattr(result, "fit_inputs", None):
        return result.fit_inputs["groups"]
    analysable = result.notes["status"].eq(STATUS_OK).to_numpy()
    columns = [c for c in (result.model.centre_by or ()) if c in result.notes.columns]
    return result.notes.loc[analysable, columns].reset_index(drop=True)


def centred_vectors(result) -> np.ndarray:
    """The run's note vectors in the centred space the themes were found in (language etc. removed)."""
    return result.model.centre(result.vectors, centre_groups(result))


def project_2d(vectors: np.ndarray, method: str = "auto", random_state: int = 0) -> tuple[np.ndarray, str]:
    """Two coordinates per note, and the method used: ``"umap"`` or ``"pca"``.

    ``auto`` uses UMAP when the ``umap-learn`` package is installed and PCA otherwise; the
    returned method says which, so a figure's title can name it. Asking for ``umap`` when it
    is not installed is an error, never a quiet switch to PCA.
    """
    method = method.lower()
    if method == "auto":
        method = "umap" if importlib.util.find_spec("umap") else "pca"
    if method == "umap":
        if importlib.util.find_spec("umap") is None:
            raise ImportError("UMAP is not installed. Install it with "
                              "`.venv/bin/python -m pip install -c constraints.txt umap-learn`, "
                              "or use method='pca'.")
        import umap

        return umap.UMAP(n_components=2, n_jobs=1, random_state=random_state).fit_transform(vectors), "umap"
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(vectors), "pca"
    raise ValueError(f"unknown projection method {method!r}; use 'auto', 'umap' or 'pca'.")


def theme_overview(themes: pd.DataFrame, assignments: pd.DataFrame, n_keywords: int = 6,
                   n_quotes: int = 2, quote_chars: int = 110) -> pd.DataFrame:
    """One row per theme: kind, size, top keywords and its first representative quotes.

    Quotes are the theme's representative notes (``quote_ids``) shortened to ``quote_chars``,
    each followed by its note id; notes with contact details are withheld.
    """
    from analysis.personas import quote

    shown = withhold_contact_details(assignments[["note_id", "text"]])
    text = dict(zip(shown["note_id"].astype(str), shown["text"]))
    rows = []
    for theme in themes.itertuples():
        quotes = [f"«{quote(text.get(note_id, ''), quote_chars)}» ({note_id})"
                  for note_id in list(theme.quote_ids)[:n_quotes]]
        rows.append({"theme_id": theme.theme_id, "label": theme.label, "kind": theme.kind,
                     "size": int(theme.size), "keywords": ", ".join(list(theme.keywords)[:n_keywords]),
                     "quotes": " · ".join(quotes)})
    return pd.DataFrame(rows, columns=["theme_id", "label", "kind", "size", "keywords", "quotes"])


def persona_overview(personas) -> pd.DataFrame:
    """One row per persona from personas.yml: id, name, role, site, aliases and number of needs."""
    return pd.DataFrame([{"persona_id": p.id, "name": p.name, "role": p.role, "site": p.site or "",
                          "aliases": ", ".join(p.aliases), "needs": len(p.needs)} for p in personas],
                        columns=["persona_id", "name", "role", "site", "aliases", "needs"])


# --------------------------------------------------------------------------- what an analyst's overrides changed


def overrides_table(report: Sequence[dict]) -> pd.DataFrame:
    """One row per override entry of a run (``RunResult.overrides_report``), in the order applied.

    ``entry`` repeats the YAML entry as ``key: value`` pairs, so a ``stale`` one is easy to find
    in the file; ``detail`` says what the entry did, or why it matched nothing.
    """
    rows = [{"operation": item["operation"],
             "entry": ", ".join(f"{key}: {value}" for key, value in (item.get("entry") or {}).items()),
             "state": item["state"], "detail": item.get("detail", "")} for item in report]
    return pd.DataFrame(rows, columns=["operation", "entry", "state", "detail"])


def theme_size_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Two runs' themes side by side: label and size before and after, and the change in size.

    ``before`` and ``after`` are themes tables (``RunResult.themes``). Themes of ``before`` come
    first, in its order, then themes found only in ``after``; a theme absent from one run has
    size 0 and an empty label there.
    """
    for name, themes in (("before", before), ("after", after)):
        missing = [c for c in ("theme_id", "label", "size") if c not in themes.columns]
        if missing:
            raise KeyError(f"the {name} themes table has no column(s) {missing}; pass RunResult.themes.")
    ids = list(dict.fromkeys([*before["theme_id"].astype(str), *after["theme_id"].astype(str)]))
    old = before.assign(theme_id=before["theme_id"].astype(str)).set_index("theme_id")
    new = after.assign(theme_id=after["theme_id"].astype(str)).set_index("theme_id")
    table = pd.DataFrame({"theme_id": ids,
                          "label_before": old["label"].reindex(ids).fillna("").to_numpy(),
                          "label_after": new["label"].reindex(ids).fillna("").to_numpy(),
                          "size_before": old["size"].reindex(ids).fillna(0).astype("int64").to_numpy(),
                          "size_after": new["size"].reindex(ids).fillna(0).astype("int64").to_numpy()})
    table["change"] = table["size_after"] - table["size_before"]
    return table


def moved_notes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The notes whose theme or status differs between two runs of the same notes.

    ``before`` and ``after`` are assignments tables (``RunResult.assignments``). One row per
    changed note, ordered by the move (theme before, theme after) and note id: the themes and
    statuses on both sides, the reason the second run gives, and the text with contact details
    withheld.
    """
    columns = ["note_id", "theme_id", "status", "status_reason", "text"]
    _require(before, columns)
    _require(after, columns)
    left, right = set(before["note_id"].astype(str)), set(after["note_id"].astype(str))
    if left != right:
        raise ValueError(f"moved_notes compares two runs of the same notes, but {len(left - right)} note id(s) are "
                         f"only in the first and {len(right - left)} only in the second. Run both on the same input.")
    pairs = before[["note_id", "theme_id", "status"]].merge(after[columns], on="note_id", suffixes=("_before", "_after"))
    pairs = pairs.rename(columns={"theme_id_before": "theme_before", "theme_id_after": "theme_after"})
    changed = pairs["theme_before"].ne(pairs["theme_after"]) | pairs["status_before"].ne(pairs["status_after"])
    moved = pairs.loc[changed, ["note_id", "theme_before", "theme_after", "status_before", "status_after",
                                "status_reason", "text"]]
    moved = moved.sort_values(["theme_before", "theme_after", "note_id"], kind="stable").reset_index(drop=True)
    return withhold_contact_details(moved)


def example_overrides(result) -> dict:
    """An overrides file built from a run, to show what each kind of entry does (notebook 02).

    Picked from the run itself, so it applies to any corpus: exclude the least certain themed
    note, pin the closest call to its runner-up theme, merge the two smallest themes, rename
    the largest new candidate theme (or the largest theme), and one deliberately stale pin.
    Only the first three need enough themes; an entry that cannot be formed is left out.
    """
    themed = result.assignments[result.assignments["theme_id"].ne("") & result.assignments["status"].isin(
        ["assigned", "new_theme"])].sort_values("note_id")
    themes = result.themes[result.themes["size"].astype(int) > 0].sort_values(["size", "theme_id"])
    labels = dict(zip(result.themes["theme_id"], result.themes["label"]))
    overrides: dict[str, list] = {}
    if len(themed):
        weakest = themed.sort_values(["theme_score", "note_id"]).iloc[0]
        overrides["exclude"] = [{"note": weakest["note_id"], "reason": "example: the note the model was least sure of"}]
        themed = themed[themed["note_id"] != weakest["note_id"]]
    close = themed[themed["secondary_theme_id"].ne("")].sort_values(["theme_margin", "note_id"])
    overrides["pin"] = ([{"note": close.iloc[0]["note_id"], "theme": close.iloc[0]["secondary_theme_id"]}]
                        if len(close) else [])
    overrides["pin"].append({"note": "not-a-note-id", "theme": str(themes["theme_id"].iloc[-1]) if len(themes) else "x"})
    if len(themes) >= 3:
        small, smaller = themes["theme_id"].iloc[1], themes["theme_id"].iloc[0]
        overrides["merge"] = [{"themes": [str(small), str(smaller)], "into": str(small),
                               "name": f"{labels[small]} + {labels[smaller]}"}]
    merged = set(overrides.get("merge", [{}])[0].get("themes", []))
    candidates = themes[~themes["theme_id"].isin(merged)]
    new = candidates[candidates["kind"].eq("new")]
    renamed = (new if len(new) else candidates)["theme_id"]
    if len(renamed):
        overrides["rename"] = [{"theme": str(renamed.iloc[-1]), "name": f"Renamed: {labels[renamed.iloc[-1]]}"}]
    return overrides
