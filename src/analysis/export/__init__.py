"""Exports of a finished run: REFI-QDA project, codebook and the HTML report.

Everything here reads a run's output folder (``assignments.csv``, ``themes.csv``, …) and never
the raw corpus. This module holds what every writer shares:

- spreadsheet safety: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is run as a formula by Excel, LibreOffice and Google Sheets (CSV injection). Such
  cells get a leading ``'``, which the spreadsheet shows as plain text; ``read_csv`` takes it
  off again, so the round trip is exact;
- ``RunFolder``, the tables of a finished run, read with clear errors.
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


class ExportError(ValueError):
    """A run folder or an exchange file cannot be used; the message says where and what to do."""


# --------------------------------------------------------------------------- spreadsheet safety


def _needs_escape(text: str) -> bool:
    # A string of escapes followed by a trigger is escaped too, so that the reverse is exact:
    # "'=x" (a note that really starts with an apostrophe) is written as "''=x".
    return text.lstrip(ESCAPE).startswith(FORMULA_TRIGGERS)


def spreadsheet_safe(value):
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula.

    Non-strings are returned unchanged. ``from_spreadsheet_safe`` reverses it exactly.
    """
    if isinstance(value, str) and _needs_escape(value):
        return ESCAPE + value
    return value


def from_spreadsheet_safe(value):
    """Reverse ``spreadsheet_safe``: drop the ``'`` it added, and nothing else."""
    if isinstance(value, str) and value.startswith(ESCAPE) and _needs_escape(value[1:]):
        return value[1:]
    return value


def _is_text_column(column: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as UTF-8 CSV with a byte-order mark (no index, ``\\n`` line ends), every text
    cell made safe.

    The BOM is what makes Excel read the file as UTF-8 on a double-click (without it, a Nordic
    Excel shows "Ã¸" for "ø"); pandas, Python's csv module (``utf-8-sig``) and R skip it. No
    ``sep=`` line: Excel honours it but then ignores the BOM, which breaks æøå again.
    """
    path = Path(path)
    safe = frame.copy()
    for name in safe.columns:
        if _is_text_column(safe[name]):
            safe[name] = safe[name].map(spreadsheet_safe, na_action="ignore")
    # Python's csv writer (3.11) quotes a field holding "\n" but not one holding a lone "\r",
    # which readers then take for a line end: quote every text field when there is one.
    has_cr = any(safe[name].map(lambda v: isinstance(v, str) and "\r" in v).any()
                 for name in safe.columns if _is_text_column(safe[name]))
    safe.to_csv(path, index=False, lineterminator="\n", encoding="utf-8-sig",
                quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)
    return path


def read_csv(path: str | Path, dtype=str) -> pd.DataFrame:
    """Read a CSV written by ``write_csv``: text cells as ``str``, empty cells as ``""``.

    ``dtype`` is passed to pandas (``str`` by default, so ids like ``007`` stay text); the
    escape of every text column is reversed.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExportError(f"{path}: file not found. Run `analysis run` first, or point --from "
                          "at the folder the run wrote.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ExportError(f"{path}: not a readable UTF-8 CSV ({error}). Write it again with "
                          "`analysis run`.") from None
    for name in frame.columns:
        if _is_text_column(frame[name]):
            frame[name] = frame[name].map(from_spreadsheet_safe, na_action="ignore")
    return frame


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
