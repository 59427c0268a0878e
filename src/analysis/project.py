"""A project of one's own: ``analysis init DIR`` writes a commented analysis.toml for the files in DIR.

The config names the user's notes, their seed codebook and personas when DIR holds them (found
by their top-level key, never by a fixed name), an output folder with the embedding cache inside
it, and the breakdowns ("who says what") the notes' own columns allow. Nothing from the example
corpus is referred to, so a run from this config can only use the user's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.files import DEFAULT_CSV_DIALECT
from analysis.load import SUPPORTED_SUFFIXES, LoadError, load_notes

CONFIG_NAME = "analysis.toml"
OUT_NAME = "out"
#: An attribute with at most this many distinct values is offered as a breakdown.
MAX_BREAKDOWN_VALUES = 30
_NOT_ATTRIBUTES = {"extra_cells", "section", "sheet"}


class ProjectError(ValueError):
    """The project folder cannot be set up; the message says what to do."""


@dataclass
class Project:
    folder: Path
    notes: list[str]
    seed_themes: str = ""
    personas: str = ""
    text_column: str = ""
    csv_dialect: str = DEFAULT_CSV_DIALECT
    breakdowns: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # what the user should still fix

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_NAME


def _relative(path: Path, folder: Path) -> str:
    path = path.resolve()
    return path.relative_to(folder.resolve()).as_posix() if path.is_relative_to(folder.resolve()) else str(path)


def _yaml_kind(path: Path) -> str | None:
    """"themes" or "personas" when the file's top-level key says so (REFI-QDA .qdc: themes)."""
    if path.suffix.lower() == ".qdc":
        return "themes"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if isinstance(data, dict):
        for kind in ("themes", "personas"):
            if kind in data:
                return kind
    return None


def _notes_files(folder: Path) -> list[Path]:
    """Notes files directly in the folder; else its subfolders (never out/) that hold some."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                   and p.name.lower() != "readme.md" and not p.name.startswith((".", "~$")))
    if files:
        return files
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != OUT_NAME and not p.name.startswith(".")
                  and any(f.suffix.lower() in SUPPORTED_SUFFIXES for f in p.rglob("*")))


def _reference_file(folder: Path, kind: str, given: Path | None, problems: list[str]) -> str:
    if given is not None:
        return _relative(Path(given), folder)
    found = [p for p in sorted(folder.iterdir()) if p.is_file()
             and p.suffix.lower() in (".yml", ".yaml", ".qdc") and _yaml_kind(p) == kind]
    if len(found) > 1:
        problems.append(f"several files start with '{kind}:' ({', '.join(p.name for p in found)}); "
                        f"set the one to use in [paths]")
        return ""
    return found[0].name if found else ""


def _breakdowns(notes) -> list[str]:
    from analysis.schema import CORE_COLUMNS, GOLD_PREFIX

    chosen = []
    for column in notes.columns:
        if column in CORE_COLUMNS or column.startswith((GOLD_PREFIX, "input_")) or column in _NOT_ATTRIBUTES:
            continue
        values = notes[column].astype(str).str.strip()
        distinct = values[values != ""].nunique()
        if 2 <= distinct <= MAX_BREAKDOWN_VALUES and values.str.len().max() <= 60:
            chosen.append(column)
    return chosen


def plan_project(folder: Path, notes: list[Path] | None = None, seed_themes: Path | None = None,
                 personas: Path | None = None) -> Project:
    """What ``init`` would write for ``folder``: its notes, reference files, text column and breakdowns."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProjectError(f"{folder}: not a folder. Create it and put your notes (CSV, XLSX, Markdown) in it, "
                           "or pass --notes.")
    problems: list[str] = []
    note_paths = [Path(p) for p in notes] if notes else _notes_files(folder)
    if not note_paths:
        raise ProjectError(f"{folder}: no notes files ({', '.join(SUPPORTED_SUFFIXES)}) in the folder. Put your "
                           "notes export there, or pass --notes PATH.")
    project = Project(folder, [_relative(p, folder) for p in note_paths],
                      seed_themes=_reference_file(folder, "themes", seed_themes, problems),
                      personas=_reference_file(folder, "personas", personas, problems), problems=problems)
    try:
        loaded = load_notes(note_paths, root=folder)
    except LoadError as error:
        problems.append(f"the notes cannot be read yet: {error}")
        return project
    headers = sorted({found["text"] for found in loaded.attrs.get("columns", {}).values() if "text" in found})
    project.text_column = headers[0] if len(headers) == 1 else ""
    project.breakdowns = _breakdowns(loaded)
    project.csv_dialect = _csv_dialect(loaded.attrs.get("delimiters", {}))
    return project


def _csv_dialect(delimiters: dict[str, str]) -> str:
    """Outputs like the user's own notes: semicolon CSVs are what a Nordic Excel writes and opens."""
    return "nordic" if delimiters and set(delimiters.values()) == {";"} else DEFAULT_CSV_DIALECT


def _toml(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string or list of strings is valid TOML


def config_text(project: Project) -> str:
    """The commented analysis.toml for ``project``."""
    text_line = (f"# text = {_toml(project.text_column)}        # recognised by its name; set it to use another column"
                 if project.text_column else '# text = ""              # the header of the column that holds the notes')
    return f"""# analysis.toml for your own notes, written by `analysis init`. Paths are relative to this file.
# Run:  analysis run --config {CONFIG_NAME}
# Everything the run writes goes to [paths] out; nothing here points at the example corpus.

[paths]
notes = {_toml(project.notes)}   # files or folders: CSV/TSV/XLSX notes, Markdown/TXT documents
seed_themes = {_toml(project.seed_themes)}   # your codebook, YAML `themes: [{{id, name, description}}]` or .qdc; "" for none
personas = {_toml(project.personas)}         # your personas, YAML `personas: [{{id, name, description, needs}}]`; "" for none
overrides = "overrides.yml"  # create it when you first disagree with the model (docs/cli.md)
out = "{OUT_NAME}"                  # tables, figures, report inputs, manifest.json
cache = ""                   # embedding cache; "" puts it in {OUT_NAME}/cache

[columns]
# Which of your columns plays which role. Headers such as text, tekst, notat, innhold, indhold,
# anteckning, idé, lapp, post-it (text), id, nr (note id) and språk (lang) are recognised without this.
{text_line}
# note_id = ""       # a column with stable ids; without one, ids come from the text and survive renaming the file
# lang = ""          # nb, nn, sv, da, en; detected when missing
# site = ""
# workshop = ""
# participant_role = ""
# persona = ""       # a persona id, name or alias written on the note

[report]
# Who says what: one theme × value table per column (breakdowns.csv, the report, notebook 03).
breakdowns = {_toml(project.breakdowns)}

[output]
# The CSV tables the run writes: "nordic" (';' between columns, decimal comma) opens by double-click
# in a Danish, Norwegian or Swedish Excel; "standard" (',' and decimal point) in an English one.
# Chosen from your notes file; both keep æøå (UTF-8 with BOM) and the guard against formulas.
csv_dialect = {_toml(project.csv_dialect)}

[embedding]
backend = "e5"          # e5 (offline, default) | sentence-transformers | tfidf

[themes]
random_state = 0
# n_themes = 8          # fix the number of new themes; leave out to choose it by modularity

[privacy]
mask = true             # mask e-mails, phone numbers, national ids and addresses before anything else
names = []              # names of real people to mask as well
"""


def write_project(project: Project, force: bool = False) -> Path:
    path = project.config_path
    if path.exists() and not force:
        raise ProjectError(f"{path}: already exists. Edit it, or pass --force to write a new one over it.")
    path.write_text(config_text(project), encoding="utf-8")
    return path
