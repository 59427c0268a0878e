"""Exports of a finished run: REFI-QDA project, codebook and the HTML report.

Everything here reads a run's output folder (``assignments.csv``, ``themes.csv``, …) and never
the raw corpus. This module holds what every writer shares:

- spreadsheet safety (``write_csv``/``read_csv``, from ``analysis.files``): a cell a spreadsheet
  would run as a formula gets a leading ``'`` that ``read_csv`` takes off again;
- ``RunFolder``, the tables of a finished run, read with clear errors.
"""

from __future__ import annotations

import json
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
    ASSIGNMENTS_FILE: ("note_id", "theme_id", "theme_label", "status", "source_file", "source_row",
                       "source_type", "lang", "text"),
    THEMES_FILE: ("theme_id", "label", "kind", "keywords", "size", "representative_note_ids"),
}


@dataclass
class RunFolder:
    """The tables of a finished run, as text (``""`` for empty cells)."""

    path: Path
    assignments: pd.DataFrame
    themes: pd.DataFrame
    manifest: dict | None = None
    persona_report: dict = field(default_factory=dict)
    k_selection: pd.DataFrame | None = None

    def keywords(self, theme_id: str) -> list[str]:
        row = self.themes.loc[self.themes["theme_id"] == theme_id]
        return split_list(row["keywords"].iloc[0]) if len(row) else []


def split_list(cell: str) -> list[str]:
    """A ``"; "``-joined cell of themes.csv as a list."""
    return [part.strip() for part in str(cell).split(";") if part.strip()]


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}). "
                          "Run `analysis run` again to rewrite it.") from None


def read_run(run_dir: str | Path) -> RunFolder:
    """Read a run's output folder; raise ExportError naming the missing file or column."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: run folder not found. Run `analysis run --out {run_dir}` first, "
                          "or give the folder of a finished run with --from.")
    tables = {}
    for name, required in _REQUIRED.items():
        table = read_csv(run_dir / name)
        missing = [column for column in required if column not in table.columns]
        if missing:
            raise ExportError(f"{run_dir / name}: column(s) {', '.join(missing)} missing. "
                              "The folder was not written by this version of `analysis run`; run it again.")
        tables[name] = table
    k_path = run_dir / K_SELECTION_FILE
    return RunFolder(path=run_dir, assignments=tables[ASSIGNMENTS_FILE], themes=tables[THEMES_FILE],
                     manifest=_read_json(run_dir / MANIFEST_FILE),
                     persona_report=_read_json(run_dir / PERSONA_REPORT_FILE) or {},
                     k_selection=read_csv(k_path) if k_path.is_file() else None)


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
