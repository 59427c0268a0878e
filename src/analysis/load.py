"""Notes tables (CSV/TSV/XLSX) and documents (Markdown/text) → one notes DataFrame.

Every row of a notes table and every unit of a document becomes one row of the frame with a
``status``; nothing is dropped silently. The note's text is kept exactly as decoded. What the
loader had to decide on the way (encodings, delimiters, blank rows, skipped files) is kept in
``frame.attrs``.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import logging
import unicodedata
import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import islice
from pathlib import Path

import pandas as pd

from analysis.files import yaml_error_place
from analysis.schema import CORE_COLUMNS, STATUS_EMPTY, STATUS_OK, UNDETERMINED
from analysis.text import normalise_language, resolve_languages, split_sentences  # noqa: F401 (normalise_language: re-exported)

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
DOCUMENT_SUFFIXES = (".md", ".txt")
SUPPORTED_SUFFIXES = TABLE_SUFFIXES + DOCUMENT_SUFFIXES
#: Notes longer than this are kept but flagged: they are probably pasted documents.
LONG_TEXT_CHARS = 5000
#: Document paragraphs longer than this are split into sentences, so one unit says one thing.
SPLIT_UNITS_OVER_CHARS = 400

FLAG_DUPLICATE_ID = "duplicate_id"
FLAG_LONG_TEXT = "long_text"
FLAG_UNKNOWN_LANG = "unknown_lang"
FLAG_DERIVED_ID = "derived_id"
FLAG_EXTRA_CELLS = "extra_cells"
FLAG_HIDDEN_SHEET = "hidden_sheet"

#: Core columns the loader fills itself; an input column with one of these names is renamed.
_GENERATED_COLUMNS = frozenset(CORE_COLUMNS) - {"note_id", "text", "lang"}

#: Headers taken as the notes' text without a [columns] mapping (compared lower-cased).
TEXT_HEADERS = ("text", "tekst", "texten", "teksten", "note", "notes", "notat", "notater", "notatet",
                "innhold", "indhold", "innehåll", "anteckning", "anteckningar", "idé", "ide", "ideer", "idéer",
                "idea", "ideas", "lapp", "lappen", "lapper", "lappar", "post-it", "postit", "post-it-lapp",
                "sticky note", "sticky notes", "gul lapp")
# Not "kommentar"/"comment": workbooks often hold a comments sheet beside the notes.
#: Headers taken as the note id without a mapping.
ID_HEADERS = ("note_id", "id", "note id", "noteid", "note-id", "nr", "nr.", "nummer", "løpenummer",
              "löpnummer", "lnr", "lapp_id", "lapp-id")
#: Headers taken as the note's language without a mapping.
LANG_HEADERS = ("lang", "språk", "sprog", "language", "sprak", "språk_kode")
#: Headers taken as the note's type (sticky note, interview note, observation, ...) without a
#: mapping: it reaches the theme model's centring (``[themes] centre_by``), which on the devsets
#: is worth more than any other change (homecare_nordic inductive ARI 0.00 -> 0.09).
SOURCE_TYPE_HEADERS = ("source_type", "type", "kind", "note_type", "source", "notetype", "notattype",
                       "type_notat", "anteckningstyp", "kilde", "källa")
_RECOGNISED = {"text": TEXT_HEADERS, "note_id": ID_HEADERS, "lang": LANG_HEADERS,
               "source_type": SOURCE_TYPE_HEADERS}


class LoadError(ValueError):
    """An input file cannot be used; the message names the place and says what to do."""

    @classmethod
    def at(cls, file: str | Path, problem: str, action: str, *, row: int | None = None,
           column: str | None = None) -> LoadError:
        place = [Path(file).as_posix() if isinstance(file, Path) else file]
        if row is not None:
            place.append(f"row {row}")
        if column is not None:
            place.append(f"column {column!r}")
        return cls(f"{', '.join(place)}: {problem}. {action}.")


# --------------------------------------------------------------------------- finding files


@dataclass(frozen=True)
class _Source:
    path: Path
    name: str       # source_file in the frame
    label: str      # how error messages name the file
    id_prefix: str  # stem, or a longer path-based prefix when two files share a stem (documents' doc_id)
    columns: tuple[tuple[str, str], ...] = ()  # (role, user's header) from [columns] or the CLI


def _skip_reason(file: Path, folder: Path | None) -> str | None:
    """Why a file found in ``folder`` (None: named by the user) is not read; None to read it."""
    suffix = file.suffix.lower()
    inside = file.relative_to(folder).parts if folder else (file.name,)
    if file.name.lower() == "readme.md":
        return "README"
    if suffix in (".yml", ".yaml"):
        return "YAML (configuration, not notes)"
    if folder and any(part.startswith((".", "~$")) for part in inside):
        return "hidden or Excel lock file"
    in_docs = any(part.lower() == "docs" for part in (folder.name, *inside[:-1])) if folder else False
    if in_docs and suffix not in DOCUMENT_SUFFIXES:
        return "not a document (.md or .txt) in a docs folder"
    if suffix not in SUPPORTED_SUFFIXES:
        return f"not a notes file ({', '.join(SUPPORTED_SUFFIXES)})"
    return None


def _files_in(path: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    if not path.exists():
        raise LoadError.at(path, "does not exist",
                           "Check the input paths in the config or on the command line")
    if path.is_file():
        reason = _skip_reason(path, None)
        if reason is None:
            return [path]
        if reason.startswith("not a notes file"):
            raise LoadError.at(path, f"is {reason}",
                               "Convert it to CSV or XLSX, or leave it out of the inputs")
        skipped.append((path, reason))
        return []
    found = []
    for file in sorted((f for f in path.rglob("*") if f.is_file()),
                       key=lambda f: f.relative_to(path).as_posix()):
        reason = _skip_reason(file, path)
        if reason is None:
            found.append(file)
        else:
            skipped.append((file, reason))
    return found


def _relative_name(path: Path, root: Path | None) -> str:
    if root is None:
        return path.name
    for candidate, base in ((path.absolute(), root.absolute()), (path.resolve(), root.resolve())):
        if candidate.is_relative_to(base):
            return candidate.relative_to(base).as_posix()
    return path.resolve().as_posix()


def _id_prefixes(files: Sequence[Path]) -> dict[Path, str]:
    """File stem, lengthened with parent folders (then the suffix) when inputs share a stem."""
    by_stem: dict[str, list[Path]] = {}
    for file in files:
        by_stem.setdefault(file.stem, []).append(file)
    prefixes = {}
    for group in by_stem.values():
        prefixes |= _distinct_prefixes(group)
    return prefixes


def _distinct_prefixes(group: list[Path]) -> dict[Path, str]:
    deepest = max(len(file.absolute().parts) for file in group)
    for keep_suffix in (False, True):
        for depth in range(1, deepest + 1):
            names = {file: _path_prefix(file, depth, keep_suffix) for file in group}
            if len(set(names.values())) == len(group):
                return names
    raise AssertionError("distinct files always have distinct paths")


def _path_prefix(file: Path, depth: int, keep_suffix: bool) -> str:
    parts = list(file.absolute().parts[-depth:])
    parts[-1] = file.name.replace(".", "_") if keep_suffix else file.stem
    return "-".join(parts)


def _sources(paths: Sequence[str | Path], root: Path | None,
             columns: tuple[tuple[str, str], ...] = ()) -> tuple[list[_Source], list[tuple[Path, str]]]:
    skipped: list[tuple[Path, str]] = []
    files: list[Path] = []
    seen = set()
    for path in map(Path, paths):
        for file in _files_in(path, skipped):
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    prefixes = _id_prefixes(files)
    sources = []
    for file in files:
        name = _relative_name(file, root)
        label = name if root is not None else file.as_posix()
        sources.append(_Source(file, name, label, prefixes[file], columns))
    return sources, skipped


# --------------------------------------------------------------------------- decoding


_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _decode(raw: bytes, source: _Source) -> tuple[str, str]:
    """Text and the encoding it was read with: UTF-8 (with or without BOM), cp1252, Latin-1."""
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise LoadError.at(source.label, "the file is empty", "Export the notes again or remove the file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export
        text, encoding = _decode_utf16(raw, source), "utf-16"
    elif b"\x00" in raw:
        raise _binary(source, raw)
    else:
        text, encoding = _decode_8bit(raw)
    if len(_BINARY_CONTROL.findall(text)) > max(1, len(text) // 100):
        raise _binary(source)
    return text, encoding


def _decode_utf16(raw: bytes, source: _Source) -> str:
    try:
        return raw.decode("utf-16")
    except UnicodeDecodeError:
        raise _binary(source) from None


def _decode_8bit(raw: bytes) -> tuple[str, str]:
    try:
        text = raw.decode("utf-8-sig")
        return text, "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def _binary(source: _Source, raw: bytes = b"") -> LoadError:
    kind = "a document" if source.path.suffix.lower() in DOCUMENT_SUFFIXES else "a CSV"
    if raw.startswith(b"PK\x03\x04"):  # a zip container: what Excel saves as .xlsx
        return LoadError.at(source.label, f"is a zip file (an Excel workbook?), not {kind}",
                            "If it is a workbook, rename it to end in .xlsx; otherwise export the notes as CSV")
    return LoadError.at(source.label, f"looks like a binary file, not {kind}",
                        "Save it again as UTF-8 text, or as .xlsx if it is an Excel workbook")


# --------------------------------------------------------------------------- tables


@dataclass
class _FileNotes:
    """What one input file contributed: notes as records plus what the loader noticed."""

    records: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # attribute columns, in input order
    encoding: str | None = None
    delimiter: str | None = None
    skipped_blank_rows: int = 0
    found_columns: dict[str, str] = field(default_factory=dict)  # role -> the header it came from


@dataclass
class _Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (spreadsheet row number, cells)
    sheet: str | None = None
    header_row: int = 1
    hidden: bool = False  # a hidden Excel sheet: its notes are read, and flagged
    roles: dict[str, str] = field(default_factory=dict)  # role -> the header it came from
    as_read: list[str] = field(default_factory=list)      # the header before roles renamed it, for messages


@contextmanager
def _cells_as_long_as(text: str) -> Iterator[None]:
    """Let one cell hold the whole file: csv's default limit (128 KiB) rejects long pasted notes."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, len(text) + 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_csv(source: _Source, result: _FileNotes) -> list[_Table]:
    text, result.encoding = _decode(source.path.read_bytes(), source)
    rows = []
    with _cells_as_long_as(text):
        result.delimiter = _sniff_delimiter(text, source.path.suffix.lower() == ".tsv")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=result.delimiter, strict=True)
        try:
            for number, cells in enumerate(reader, start=1):
                rows.append((number, cells))
        except csv.Error as error:
            raise LoadError.at(source.label, f"the CSV cannot be parsed near line {reader.line_num} ({error})",
                               "Check that quotes around cells are closed, or export the file again from Excel",
                               row=len(rows) + 1) from None
    return [_table_from_rows(rows, source, None)]


def _sniff_delimiter(text: str, tab_first: bool) -> str:
    """The delimiter giving the widest header, then the most consistent rows."""
    candidates = ("\t", ",", ";") if tab_first else (",", ";", "\t")

    def fit(delimiter: str) -> tuple[int, float, int]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        records = [cells for cells in islice(reader, 200) if any(c.strip() for c in cells)]
        if not records:
            return (0, 0.0, 0)
        width = len(records[0])
        consistent = sum(len(cells) == width for cells in records) / len(records)
        return (width, consistent, -candidates.index(delimiter))

    return max(candidates, key=fit)


def _read_xlsx(source: _Source, result: _FileNotes) -> list[_Table]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(source.path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as error:
        raise LoadError.at(source.label, f"is not a readable Excel workbook ({error})",
                           "Open it in Excel and save it again as .xlsx") from None
    try:
        tables = [_sheet_table(sheet, source) for sheet in workbook.worksheets]
    finally:
        workbook.close()
    with_text = [table for table in tables if "text" in table.header]
    if not with_text:
        found = "; ".join(f"sheet {t.sheet!r}: {_header_for_message(t.as_read) or 'no header'}" for t in tables)
        raise LoadError.at(source.label, f"no sheet has a 'text' column ({found})",
                           "Name the column with the notes 'text' in the sheet that holds them, or say "
                           "which it is with --text-column or [columns] text in analysis.toml")
    return with_text


def _sheet_table(sheet, source: _Source) -> _Table:
    table = _table_from_rows(_sheet_rows(sheet), source, sheet.title)
    table.hidden = sheet.sheet_state != "visible"  # "hidden" or "veryHidden"
    return table


def _sheet_rows(sheet) -> list[tuple[int, list[str]]]:
    rows = sheet.iter_rows(values_only=True)
    return [(number, [_cell_text(value) for value in row]) for number, row in enumerate(rows, start=1)]


def _cell_text(value: object) -> str:
    """Excel cell value as the text a person sees in the cell."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _table_from_rows(rows: list[tuple[int, list[str]]], source: _Source, sheet: str | None) -> _Table:
    """Split off the header (the first non-blank row) and name its columns."""
    filled = [(number, cells) for number, cells in rows if any(c.strip() for c in cells)]
    if not filled:
        if sheet is not None:
            return _Table([], [], sheet)
        raise LoadError.at(source.label, "the file has no header and no notes",
                           "Export the notes again or remove the file")
    header_row, header_cells = filled[0]
    body = [(number, cells) for number, cells in rows if number > header_row]
    header, roles = _column_names(header_cells, source, sheet)
    as_read = [cell.strip().lower() or f"column_{i}" for i, cell in enumerate(header_cells, start=1)]
    return _Table(header, body, sheet, header_row, roles=roles, as_read=as_read)


def _header_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).strip().lower().split())


def _column_roles(names: list[str], source: _Source, sheet: str | None) -> dict[int, str]:
    """Position -> role: the mapped headers first, then recognised names (tekst, notat, ...) for the rest."""
    where = f" in sheet {sheet!r}" if sheet else ""
    keys = [_header_key(name) for name in names]
    roles: dict[int, str] = {}
    for role, header in source.columns:
        if _header_key(header) in keys:
            roles[keys.index(_header_key(header))] = role
        elif role == "text":
            raise LoadError.at(source.label, f"has no column {header!r}{where}, which [columns] text or "
                                             f"--text-column names (columns found: {_header_for_message(names)})",
                               "Give the header exactly as it is in the file" + _suggestion(header, names))
    mapped = set(roles.values())
    for role, accepted in _RECOGNISED.items():
        if role in mapped:
            continue
        exact = [i for i, key in enumerate(keys) if key == role and i not in roles]
        found = exact or [i for i, key in enumerate(keys) if key in accepted and i not in roles]
        if len(found) > 1 and role == "text":
            raise LoadError.at(source.label, f"has several columns that could hold the notes{where} "
                                             f"({', '.join(repr(names[i]) for i in found)})",
                               "Say which one with --text-column or [columns] text in analysis.toml")
        if len(found) == 1:
            roles[found[0]] = role
    return roles


def _suggestion(word: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(_header_key(word), [_header_key(n) for n in names], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _column_names(cells: list[str], source: _Source, sheet: str | None) -> tuple[list[str], dict[str, str]]:
    """Stripped, lower-cased, unique names, with role columns renamed to their role (text, note_id, ...);
    unnamed columns get their position. Also returns role -> the header as written."""
    names: list[str] = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip().lower() or f"column_{position}"
        if name in names:
            if name == "text":
                where = f" in sheet {sheet!r}" if sheet else ""
                raise LoadError.at(source.label, f"has two 'text' columns{where}",
                                   "Rename one of them so the notes column is unambiguous")
            name = _unique_name(name, names)
            log.warning("%s: repeated column header renamed to %r", source.label, name)
        names.append(name)
    roles = _column_roles(names, source, sheet)
    found = {role: cells[i].strip() for i, role in roles.items()}
    for i, role in roles.items():  # a column already named like the role it does not play steps aside
        if role in names and names.index(role) != i:
            names[names.index(role)] = _unique_name(f"input_{role}", names)
        names[i] = role
    reserved = (_GENERATED_COLUMNS - set(roles.values())) | ({"sheet"} if sheet is not None else set()) \
        | {FLAG_EXTRA_CELLS}
    return [_unique_name(f"input_{name}", names) if name in reserved else name for name in names], found


def _unique_name(name: str, taken: Sequence[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    return candidate


def _read_table(source: _Source) -> _FileNotes:
    result = _FileNotes()
    tables = (_read_xlsx if source.path.suffix.lower() == ".xlsx" else _read_csv)(source, result)
    table = tables[0]
    for found in tables:
        result.found_columns |= {role: header for role, header in found.roles.items()
                                 if role not in result.found_columns}
    if "text" not in table.header:
        raise LoadError.at(source.label, f"has no 'text' column (columns found: {_header_for_message(table.as_read)})",
                           _missing_text_action(table.as_read), row=table.header_row)
    for table in tables:
        _add_table_rows(table, source, result)
    if not result.records:
        log.warning("%s: header only, no notes (%d blank rows)", source.label, result.skipped_blank_rows)
    return result


#: Header cells longer than this are not repeated in messages: they are probably a note.
_LONGEST_SHOWN_HEADER = 30


def _header_for_message(header: list[str]) -> str:
    """Column names for an error message, without repeating note text (privacy)."""
    return ", ".join(name if len(name) <= _LONGEST_SHOWN_HEADER else f"<{len(name)} characters>"
                     for name in header)


def _missing_text_action(header: list[str]) -> str:
    """What to do about a header without 'text', recognising a delimiter the loader does not read."""
    if len(header) == 1:
        for delimiter in sorted(set(re.findall(r"[^\w\s]", header[0])), key=header[0].count, reverse=True):
            if "text" in (part.strip() for part in header[0].split(delimiter)):
                return (f"The columns seem to be separated by {delimiter!r}, which the loader does not read: "
                        "save the file again with commas, semicolons or tabs between the columns")
    if any(len(name) > _LONGEST_SHOWN_HEADER for name in header):
        return ("The first row looks like a note, not column names: add a header row above the notes "
                "and name the notes column 'text'")
    return ("Name the column that holds the notes 'text' (or tekst, notat, anteckning, ...), or say which "
            "it is with --text-column or [columns] text in analysis.toml")


def _add_table_rows(table: _Table, source: _Source, result: _FileNotes) -> None:
    header = table.header
    keep = _kept_columns(table)
    consumed = ("note_id", "text", "lang", *(("source_type",) if "source_type" in table.roles else ()))
    attributes = [name for name, kept in zip(header, keep) if kept and name not in consumed]
    if table.sheet is not None:
        attributes.append("sheet")
    result.columns += [name for name in attributes if name not in result.columns]
    for number, cells in table.rows:
        if not any(cell.strip() for cell in cells):
            result.skipped_blank_rows += 1
            continue
        result.records.append(_table_record(header, keep, cells, number, source, table.sheet))
        if table.hidden:
            result.records[-1]["flags"].append(FLAG_HIDDEN_SHEET)
        if FLAG_EXTRA_CELLS in result.records[-1] and FLAG_EXTRA_CELLS not in result.columns:
            result.columns.append(FLAG_EXTRA_CELLS)


def _kept_columns(table: _Table) -> list[bool]:
    """Unnamed columns are kept only if some row has a value there (not a trailing ';')."""
    return [not name.startswith("column_")
            or any(position < len(cells) and cells[position].strip() for _, cells in table.rows)
            for position, name in enumerate(table.header)]


def _table_record(header: list[str], keep: list[bool], cells: list[str], number: int,
                  source: _Source, sheet: str | None) -> dict:
    flags = []
    padded = cells + [""] * (len(header) - len(cells))
    values = {name: value for name, value, kept in zip(header, padded, keep) if kept}
    text = values.pop("text")
    note_id = values.pop("note_id", "").strip()
    if not note_id and "note_id" in header:
        flags.append(FLAG_DERIVED_ID)
    source_type = values.pop("source_type", "").strip() if "source_type" in header else ""
    record = _record(note_id, text, source.name, number, flags, source_type=source_type or "note")
    record["_derive_id"] = not note_id  # from the text, in _derive_ids: stable when the file is renamed
    record["_lang_given"] = values.pop("lang", "")
    record |= values
    if sheet is not None:
        record["sheet"] = sheet
    surplus = [cell for cell in cells[len(header):] if cell.strip()]
    if surplus:
        flags.append(FLAG_EXTRA_CELLS)
        record[FLAG_EXTRA_CELLS] = " | ".join(surplus)
    return record


def _record(note_id: str, text: str, source_file: str, row: int, flags: list[str], **core) -> dict:
    empty = not text.strip()
    if len(text) > LONG_TEXT_CHARS:
        flags.append(FLAG_LONG_TEXT)
    return {
        "note_id": note_id, "text": text, "source_file": source_file, "source_row": row,
        "source_type": "note", "doc_id": "", "char_start": -1, "char_end": -1,
        "lang": UNDETERMINED, "lang_source": "undetermined",
        "status": STATUS_EMPTY if empty else STATUS_OK,
        "status_reason": "text is empty" if empty else "", "flags": flags,
    } | core


# --------------------------------------------------------------------------- documents


_FRONT_MATTER_OPEN = re.compile(r"---[ \t]*\r?\n")
_FRONT_MATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)
_ATX_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT_UNDERLINE = re.compile(r" {0,3}(?:=+|-+)[ \t]*")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?=\S)")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    section: str


def _front_matter(text: str, source: _Source) -> tuple[dict[str, str], int]:
    """Front-matter keys as text, and where the body starts."""
    import yaml

    opening = _FRONT_MATTER_OPEN.match(text)
    closing = _FRONT_MATTER_CLOSE.search(text, opening.end()) if opening else None
    if not closing:
        return {}, 0
    try:
        data = yaml.safe_load(text[opening.end():closing.start()]) or {}
    except yaml.YAMLError as error:
        # The file's line: the block starts on line 2, after the opening '---'.
        line, column, problem = yaml_error_place(error, first_line=2)
        where = f" at line {line}, column {column}" if line is not None else ""
        raise LoadError.at(source.label, f"the front matter is not valid YAML{where} ({problem})",
                           "Fix the block between the '---' lines") from None
    if not isinstance(data, dict):
        raise LoadError.at(source.label, "the front matter is not a list of 'key: value' lines",
                           "Write one 'key: value' per line between the '---' lines", row=2)
    body_start = closing.end() + (1 if text.startswith("\n", closing.end()) else 0)
    return {str(key).strip().lower(): _yaml_text(value) for key, value in data.items()}, body_start


def _yaml_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(_yaml_text(item) for item in value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _lines(text: str, start: int):
    """(offset of line start, line without its line break) from ``start`` on."""
    position = start
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline == -1 else newline + 1
        yield position, text[position:end].rstrip("\r\n")
        position = end


def _document_units(text: str, body_start: int) -> list[_Unit]:
    """Paragraphs and list items under their latest heading; long ones cut into sentences."""
    units: list[_Unit] = []
    section, block = "", None  # block: [start, end, is_paragraph] of the open paragraph or item

    def close() -> None:
        nonlocal block
        if block:
            units.extend(_split_long(text, block[0], block[1], section))
        block = None

    for offset, line in _lines(text, body_start):
        if not line.strip():
            close()
        elif heading := _ATX_HEADING.fullmatch(line):
            close()
            section = (heading.group(1) or "").strip()
        elif _SETEXT_UNDERLINE.fullmatch(line) and block and block[2]:
            section, block = " ".join(text[block[0]:block[1]].split()), None
        elif _THEMATIC_BREAK.fullmatch(line):
            close()
        elif marker := _LIST_MARKER.match(line):
            close()
            block = [offset + marker.end(), offset + len(line), False]
        elif block:
            block[1] = offset + len(line)
        else:
            indent = len(line) - len(line.lstrip())
            block = [offset + indent, offset + len(line), True]
    close()
    return units


def _split_long(text: str, start: int, end: int, section: str) -> list[_Unit]:
    while end > start and text[end - 1].isspace():
        end -= 1
    if end - start <= SPLIT_UNITS_OVER_CHARS:
        return [_Unit(start, end, section)] if end > start else []
    return [_Unit(start + a, start + b, section) for a, b in split_sentences(text[start:end])]


def _read_document(source: _Source) -> _FileNotes:
    text, encoding = _decode(source.path.read_bytes(), source)
    front_matter, body_start = _front_matter(text, source)
    doc_id = front_matter.pop("doc_id", "").strip() or source.id_prefix
    source_type = front_matter.pop("source_type", "").strip() or "document"
    lang_given = front_matter.pop("lang", "")
    reserved = _GENERATED_COLUMNS | {"note_id", "text", "section"}
    attributes = {(_unique_name(f"input_{key}", front_matter) if key in reserved else key): value
                  for key, value in front_matter.items()}
    result = _FileNotes(encoding=encoding, columns=[*attributes, "section"])
    for number, unit in enumerate(_document_units(text, body_start), start=1):
        record = _record(f"{doc_id}-u{number:03d}", text[unit.start:unit.end], source.name, number, [],
                         source_type=source_type, doc_id=doc_id, char_start=unit.start, char_end=unit.end)
        record["_lang_given"] = lang_given
        record["_lang_given_by"] = "front_matter"
        result.records.append(record | attributes | {"section": unit.section})
    if not result.records:
        log.warning("%s: the document has no paragraphs or list items", source.label)
    return result


# --------------------------------------------------------------------------- languages


def _resolve_languages(records: list[dict]) -> None:
    """Given language, else detected, else the file's majority, else undetermined (text.resolve_languages)."""
    given = [record.pop("_lang_given", "") for record in records]
    given_by = [record.pop("_lang_given_by", "column") for record in records]
    lang, source, unknown = resolve_languages(given, [r["text"] for r in records],
                                              [r["status"] == STATUS_OK for r in records],
                                              [""] * len(records), given_by)
    for record, code, found, flag in zip(records, lang, source, unknown):
        if code != UNDETERMINED:  # a record keeps "und"/"undetermined" as _record made it
            record["lang"], record["lang_source"] = code, found
        if flag:
            record["flags"].append(FLAG_UNKNOWN_LANG)


# --------------------------------------------------------------------------- the frame


#: A derived note id: this prefix and the first hex digits of the text's sha256.
DERIVED_ID_PREFIX = "note-"
_DERIVED_ID_DIGITS = 10


def _derive_ids(records: list[dict]) -> None:
    """Ids for table rows without one, from their text (whitespace and Unicode form normalised).

    The id depends on neither the file's name nor its folder nor the row, so renaming, moving
    or re-sorting the file keeps every id, and overrides stay valid. The same text repeated gets
    ``-2``, ``-3``, … in reading order.
    """
    seen: Counter = Counter()
    for record in records:
        if not record.pop("_derive_id", False):
            continue
        first = derived_note_id(record["text"])
        seen[first] += 1
        record["note_id"] = derived_note_id(record["text"], seen[first])


def derived_note_id(text: str, occurrence: int = 1) -> str:
    """The id a table row without a note id gets: ``note-`` + 10 hex digits of its text's sha256."""
    canonical = " ".join(unicodedata.normalize("NFC", text).split())
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_DERIVED_ID_DIGITS]
    return f"{DERIVED_ID_PREFIX}{digest}" + (f"-{occurrence}" if occurrence > 1 else "")


def _make_ids_unique(records: list[dict]) -> None:
    """A repeated note_id keeps its first row; later rows get ``~r<row>`` and a flag."""
    original = {record["note_id"] for record in records}
    seen: set[str] = set()
    for record in records:
        note_id = record["note_id"]
        if note_id in seen:
            candidate, number = f"{note_id}~r{record['source_row']}", 2
            while candidate in seen or candidate in original:
                candidate, number = f"{note_id}~r{record['source_row']}~{number}", number + 1
            record["note_id"] = candidate
            record["flags"].append(FLAG_DUPLICATE_ID)
        seen.add(record["note_id"])


def _natural_key(note_id: str) -> tuple:
    """Sort "x-r2" before "x-r10"; the id itself breaks ties so the order is total."""
    parts = re.split(r"(\d+)", note_id)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts), note_id


def _frame(results: list[tuple[_Source, _FileNotes]]) -> pd.DataFrame:
    records = [record for _, result in results for record in result.records]
    _derive_ids(records)
    _make_ids_unique(records)
    attributes: list[str] = []
    for _, result in results:
        attributes += [name for name in result.columns if name not in attributes]
    for record in records:
        record["flags"] = ";".join(record["flags"])
    records.sort(key=lambda record: _natural_key(record["note_id"]))
    frame = pd.DataFrame.from_records(records, columns=[*CORE_COLUMNS, *attributes])
    integers = {"source_row", "char_start", "char_end"}
    # object first: an attribute no row has (a header-only sheet) is an all-NaN float column.
    frame[attributes] = frame[attributes].astype(object).fillna("")
    return frame.astype({name: "int64" if name in integers else "str" for name in frame.columns})


def _skipped_summary(skipped: list[tuple[Path, str]], shown: int = 5) -> str:
    if not skipped:
        return ""
    listed = "; ".join(f"{file.name}: {why}" for file, why in skipped[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f" (skipped {listed}{more})"


def _check_mapping_used(mapping: tuple[tuple[str, str], ...], results: list[tuple[_Source, _FileNotes]]) -> None:
    """A mapped header no table has is a typo, not an absent attribute: say so, with a suggestion."""
    tables = [(s, r) for s, r in results if s.path.suffix.lower() in TABLE_SUFFIXES]
    if not tables:
        return
    for role, header in mapping:
        if any(r.found_columns.get(role) is not None and _header_key(r.found_columns[role]) == _header_key(header)
               for _, r in tables):
            continue
        headers = sorted({h for _, r in tables for h in r.columns})
        files = ", ".join(s.label for s, _ in tables[:3]) + (" …" if len(tables) > 3 else "")
        raise LoadError.at(files, f"no notes table has the column {header!r} that [columns] {role} "
                                  f"(or --column {role}=...) names{_suggestion(header, headers)}",
                           "Give the header exactly as it is in the file, or remove the mapping")


def require_notes(notes: pd.DataFrame) -> None:
    """Raise LoadError when the loaded inputs hold no notes at all.

    ``load_notes`` accepts a table with a header only, or a document without paragraphs,
    because other inputs may hold the notes; a run needs at least one note.
    """
    if len(notes):
        return
    blank = notes.attrs.get("skipped_blank_rows", {})
    files = ", ".join(blank) or "the inputs"
    raise LoadError.at(files, f"no notes to analyse (only headers, blank rows or empty documents; "
                              f"{sum(blank.values())} blank row(s) skipped)",
                       "Add notes below the header row, or point --notes or [paths] notes at the files "
                       "that hold them")


def load_notes(paths: Sequence[str | Path], root: Path | None = None,
               columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read notes tables and documents into one notes frame (schema.CORE_COLUMNS first).

    ``paths`` are files or folders (read recursively, in sorted order). ``source_file`` is
    relative to ``root`` when given, else the file name. ``columns`` maps a role (text,
    note_id, lang, source_type, site, workshop, participant_role, persona) to the user's header;
    without it, common headers (tekst, notat, anteckning, id, språk, ...) are recognised.
    Raises LoadError for unusable files.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    root = Path(root) if root is not None else None
    mapping = tuple((role, header) for role, header in (columns or {}).items() if header and header.strip())
    sources, skipped = _sources(paths, root, mapping)
    for file, reason in skipped:
        log.info("skipped %s: %s", file.as_posix(), reason)
    if not sources:
        raise LoadError.at(", ".join(str(p) for p in paths) or "(no inputs)",
                           "no notes files found" + _skipped_summary(skipped),
                           f"Give folders or files ending in {', '.join(SUPPORTED_SUFFIXES)}")
    results = []
    for source in sources:
        is_document = source.path.suffix.lower() in DOCUMENT_SUFFIXES
        result = (_read_document if is_document else _read_table)(source)
        _resolve_languages(result.records)
        results.append((source, result))
    _check_mapping_used(mapping, results)
    frame = _frame(results)
    frame.attrs = {
        "columns": {s.name: r.found_columns for s, r in results if r.found_columns},  # role -> header, per file
        "files": [str(s.path) for s, _ in results],   # every file read, for the run manifest
        "encodings": {s.name: r.encoding for s, r in results if r.encoding},
        "delimiters": {s.name: r.delimiter for s, r in results if r.delimiter},
        "skipped_blank_rows": {s.name: r.skipped_blank_rows for s, r in results},
        "skipped_files": {_relative_name(f, root) if root else f.as_posix(): why for f, why in skipped},
    }
    return frame
