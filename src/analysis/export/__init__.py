"""Exports of a finished run: REFI-QDA project, codebook and the HTML report.

Everything here reads a run's output folder (``assignments.csv``, ``themes.csv``, …) and never
the raw corpus. This module holds what every writer shares:

- spreadsheet safety (``write_csv``/``read_csv``, from ``analysis.files``): a cell a spreadsheet
  would run as a formula gets a leading ``'`` that ``read_csv`` takes off again;
- ``RunFolder``, the tables of a finished run, read with clear errors.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.files import (ESCAPE, FORMULA_TRIGGERS, RunFileError, from_spreadsheet_safe, read_csv,  # noqa: F401
                            spreadsheet_safe, write_csv)

# The one spreadsheet-safe CSV writer and reader lives in analysis.files; exported here for the writers.
ExportError = RunFileError


# --------------------------------------------------------------------------- run folder

ASSIGNMENTS_FILE = "assignments.csv"
THEMES_FILE = "themes.csv"
MANIFEST_FILE = "manifest.json"
PERSONA_REPORT_FILE = "persona_report.json"
K_SELECTION_FILE = "k_selection.csv"

_REQUIRED = {
    ASSIGNMENTS_FILE: ("note_id", "theme_id", "theme_label", "status", "persona_id", "persona_method",
                       "source_file", "source_row", "source_type", "lang", "text"),
    THEMES_FILE: ("theme_id", "label", "kind", "keywords", "size", "representative_note_ids"),
}
#: Columns of assignments.csv that are the run's own, not the note's attributes.
_RUN_COLUMNS = frozenset({"note_id", "theme_id", "theme_label", "theme_score", "theme_margin", "secondary_theme_id",
                          "persona_id", "persona_method", "persona_score", "status", "status_reason", "flags",
                          "source_file", "source_row", "doc_id", "char_start", "char_end", "lang", "text",
                          "extra_cells", "section", "source_type"})
#: An attribute shown with every quote has at most this many values, each at most this long.
_QUOTE_ATTRIBUTE_VALUES, _QUOTE_ATTRIBUTE_CHARS = 40, 60
#: Representative notes quoted per theme, in the codebook and in the report.
N_QUOTES = 3


@dataclass
class RunFolder:
    """The tables, JSON files and figures of one finished run: text cells as ``str`` (``""`` when
    empty), exactly as the run wrote them (the spreadsheet guard undone). The one reader of a run
    folder: every export and the report use it."""

    path: Path
    assignments: pd.DataFrame
    themes: pd.DataFrame
    manifest: dict | None = None
    persona_report: dict = field(default_factory=dict)
    k_selection: pd.DataFrame | None = None
    persona_theme: pd.DataFrame | None = None
    persona_needs: pd.DataFrame | None = None
    site_theme: pd.DataFrame | None = None
    breakdowns: pd.DataFrame | None = None
    evaluation: dict | None = None
    privacy: dict | None = None
    overrides: list | dict | None = None
    persona_names: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    def keywords(self, theme_id: str) -> list[str]:
        row = self.themes.loc[self.themes["theme_id"] == theme_id]
        return split_list(row["keywords"].iloc[0]) if len(row) else []

    def quote_attributes(self) -> list[str]:
        """The note attributes every quote shows (group, workshop, role, site, ...), in column order."""
        chosen = []
        for column in self.assignments.columns:
            if column in _RUN_COLUMNS or column.startswith("input_"):
                continue
            values = self.assignments[column].astype(str).str.strip()
            filled = values[values != ""]
            if len(filled) and filled.nunique() <= _QUOTE_ATTRIBUTE_VALUES \
                    and filled.str.len().max() <= _QUOTE_ATTRIBUTE_CHARS:
                chosen.append(column)
        return chosen

    def notes_by_id(self) -> pd.DataFrame:
        """The assignments indexed by note id (each note once), to look quotes up."""
        return self.assignments.drop_duplicates("note_id").set_index("note_id", drop=False)


def split_list(cell: str) -> list[str]:
    """A ``"; "``-joined cell of themes.csv as a list."""
    return [part.strip() for part in str(cell).split(";") if part.strip()]


def theme_quotes(theme, notes_by_id: pd.DataFrame, n: int = N_QUOTES) -> list[pd.Series]:
    """Up to ``n`` of a theme's representative notes that have text, in themes.csv's order: rows of
    ``notes_by_id`` (``RunFolder.notes_by_id()``). ``theme`` is a row of themes.csv."""
    ids = [i for i in split_list(theme.get("representative_note_ids", "")) if i in notes_by_id.index]
    return [note for note in (notes_by_id.loc[i] for i in ids) if note["text"].strip()][:n]


def _read_json(path: Path, kinds: tuple[type, ...] = (dict,)):
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExportError(f"{path}: not valid JSON ({error}). Run `analysis run` again to rewrite it, "
                          "or delete it to leave that part out.") from None
    if not isinstance(data, kinds):
        expected = " or ".join("an object" if k is dict else "a list" for k in kinds)
        raise ExportError(f"{path}: expected {expected} at the top level of the JSON, found {type(data).__name__}. "
                          "Run `analysis run` again to rewrite it.")
    return data


def _table(path: Path, dialect: str | None, required: bool = False) -> pd.DataFrame | None:
    if not path.is_file() and not required:
        return None
    try:
        table = read_csv(path, dialect=dialect)
    except pd.errors.EmptyDataError:
        raise ExportError(f"{path}: empty, not a table. Run `analysis run` again to rewrite it.") from None
    missing = [column for column in _REQUIRED.get(path.name, ()) if column not in table.columns]
    if missing:
        raise ExportError(f"{path}: column(s) {', '.join(missing)} missing. "
                          "The folder was not written by this version of `analysis run`; run it again.")
    return table


def _csv_dialect(manifest: dict | None) -> str | None:
    """The dialect the run recorded ([output] csv_dialect); None: read it from each file's header."""
    return ((manifest or {}).get("config") or {}).get("output", {}).get("csv_dialect")


def _persona_names(run_dir: Path) -> dict[str, str]:
    """Display names: the run's own personas file (run_inputs/), else personas/<id>.md's first line."""
    from analysis.personas import PersonaFileError, load_personas

    try:
        own = run_inputs(run_dir).get("personas")
        if own is not None:
            return {persona.id: persona.name for persona in load_personas(own)}
    except (ValueError, PersonaFileError):
        pass  # an unreadable copy: fall back to the summaries' headings
    folder = run_dir / "personas"
    names = {}
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        first = path.read_text(encoding="utf-8").partition("\n")[0]
        match = re.match(r"#\s*(.+?)\s*\(`[^`]*`\)\s*$", first)
        names[path.stem] = match.group(1) if match else path.stem
    return names


def read_run(run_dir: str | Path) -> RunFolder:
    """Read a run's output folder; raise ExportError naming the missing file or column.

    Only assignments.csv and themes.csv are required; every other table or JSON file is None
    when the run did not write it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: run folder not found. Run `analysis run --out {run_dir}` first, "
                          "or give the folder of a finished run with --from.")
    manifest = _read_json(run_dir / MANIFEST_FILE)
    dialect = _csv_dialect(manifest)
    return RunFolder(
        path=run_dir,
        assignments=_table(run_dir / ASSIGNMENTS_FILE, dialect, required=True),
        themes=_table(run_dir / THEMES_FILE, dialect, required=True),
        manifest=manifest,
        persona_report=_read_json(run_dir / PERSONA_REPORT_FILE) or {},
        k_selection=_table(run_dir / K_SELECTION_FILE, dialect),
        persona_theme=_table(run_dir / "persona_theme.csv", dialect),
        persona_needs=_table(run_dir / "persona_needs.csv", dialect),
        site_theme=_table(run_dir / "site_theme.csv", dialect),
        breakdowns=_table(run_dir / "breakdowns.csv", dialect),
        evaluation=_read_json(run_dir / "evaluation.json"),
        privacy=_read_json(run_dir / "privacy_report.json"),
        overrides=_read_json(run_dir / "overrides_report.json", kinds=(dict, list)),
        persona_names=_persona_names(run_dir),
        figures={p.stem: p for p in sorted((run_dir / "figures").glob("*.png"))},
    )


def run_csv_dialect(run: RunFolder) -> str | None:
    """The CSV dialect a writer of this run's tables should use (the run's own)."""
    return _csv_dialect(run.manifest)


def run_inputs(run_dir: str | Path) -> dict[str, Path]:
    """The run's own seed codebook and personas file (role -> path), as its manifest names them.

    ``analysis run`` writes them into ``run_inputs/`` of the run folder, so an export describes
    the run with the files it really used. Empty for a run without them (or without a manifest).
    """
    run_dir = Path(run_dir)
    manifest = _read_json(run_dir / MANIFEST_FILE) or {}
    found = {}
    for role, relative in (manifest.get("run_inputs") or {}).items():
        path = run_dir / relative
        if not path.is_file():
            raise ExportError(f"{path}: missing, although {run_dir / MANIFEST_FILE} names it as the run's "
                              f"{role.replace('_', ' ')}. Run `analysis run` again, or pass the file explicitly.")
        found[role] = path
    return found


#: Every zip entry this package writes carries this time (the earliest a zip can hold).
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def _zip_entry(name: str, directory: bool = False) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    entry.create_system = 3
    entry.external_attr = ((0o40755 << 16) | 0x10) if directory else (0o644 << 16)
    entry.compress_type = zipfile.ZIP_STORED if directory else zipfile.ZIP_DEFLATED
    return entry


def write_zip(out_path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """A zip file with no clock in it: fixed entry times and modes, members in the given order.

    ``members`` are (name, bytes) pairs; bytes None makes a folder entry. The same members give
    the same bytes on any machine, on any day.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")  # never leave half a project behind
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name, data in members:
                archive.writestr(_zip_entry(name, directory=data is None), b"" if data is None else data)
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)
    return out_path
