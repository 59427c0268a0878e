"""The file formats every layer shares: file hashes, YAML with located errors, spreadsheet-safe CSV.

Bottom layer: imports nothing else of the package, does no work at import (``yaml`` is imported
where a YAML file is read).

- ``sha256_file``: the one file hash (manifests, bundles, embedder weights, REFI-QDA parameters).
- ``read_yaml``: a UTF-8 YAML file with syntax errors placed where the user must look (1-based
  line and column of the key or quote that started the problem, not where PyYAML noticed it),
  and ``yaml_item_lines`` for messages about the items of a top-level list.
- ``write_csv`` / ``read_csv``: the one CSV writer and reader of a run's tables. A cell that
  starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by
  Excel, LibreOffice and Google Sheets (CSV injection); such cells get a leading ``'``, which the
  spreadsheet shows as plain text, and ``read_csv`` takes it off again, so the round trip is
  exact. Two dialects (``CSV_DIALECTS``): ``standard`` (comma, decimal point) and ``nordic``
  (semicolon, decimal comma), the one a Danish, Norwegian or Swedish Excel opens by double-click.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the CSV functions that use it: `import analysis.cli` stays light
    import pandas as pd


# --------------------------------------------------------------------------- hashes


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks (weights files are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: str | Path, suffixes) -> str:
    """One SHA-256 over the files of a folder with these suffixes: each relative name, then its bytes."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in suffixes:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- YAML


def yaml_error_place(error, first_line: int = 1) -> tuple[int | None, int | None, str]:
    """(line, column, problem) of a YAML syntax error, 1-based, where the user must look.

    PyYAML's scanner notices a missing ':' or an unclosed quote only on a later line (for an
    unclosed quote, at the end of the file); where the key or the quote *started* is its
    ``context_mark``, as is the opening '[' or '{' of an unclosed list or mapping. Other parser
    errors (bad indentation) are at their ``problem_mark``.
    ``first_line`` is the file line of the YAML text's first line (front matter: 2).
    """
    import yaml

    mark = getattr(error, "problem_mark", None)
    context = getattr(error, "context_mark", None)
    opened_here = isinstance(error, yaml.scanner.ScannerError) or "flow" in (getattr(error, "context", "") or "")
    if opened_here and context is not None:
        mark = context
    problem = getattr(error, "problem", None) or "syntax error"
    if "could not find expected ':'" in problem:
        problem = "a key without ':' after it (write 'key: value')"
    elif "end of stream" in problem and "quoted scalar" in (getattr(error, "context", "") or ""):
        problem = "a quote opened here is never closed"
    if mark is None:
        return None, None, problem
    return mark.line + first_line, mark.column + 1, problem


def yaml_item_lines(text: str, key: str) -> list[int]:
    """The 1-based line of each item of the top-level list ``key`` in a YAML text, for messages.

    Empty when the text is not a mapping holding that list (the caller reports that itself).
    """
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for name, value in root.value:
        if getattr(name, "value", None) == key and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def read_yaml(path: str | Path, error: type[Exception], what: str) -> tuple[object, str]:
    """(data, text) of a UTF-8 YAML file; ``error`` names the file, line and column of a problem.

    ``what`` is the file's content in words ("seed themes", "personas", "overrides"), for the
    message that says how to save it.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text), text
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot be read as UTF-8 text ({problem}). "
                    f"Save the {what} as a UTF-8 YAML file.") from None
    except yaml.YAMLError as problem:
        line, column, description = yaml_error_place(problem)  # where the key or quote starts
        where = f", line {line}, column {column}" if line is not None else ""
        raise error(f"{path}{where}: not valid YAML ({description}). "
                    "Fix the indentation or quoting there.") from None


# --------------------------------------------------------------------------- spreadsheet-safe CSV

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


@dataclass(frozen=True)
class CsvDialect:
    name: str
    sep: str
    decimal: str


#: ``standard``: what pandas, R and an English Excel read. ``nordic``: what a Danish, Norwegian or
#: Swedish Excel opens by double-click (its list separator is ';' and its decimal mark ',').
CSV_DIALECTS = {"standard": CsvDialect("standard", ",", "."), "nordic": CsvDialect("nordic", ";", ",")}
DEFAULT_CSV_DIALECT = "standard"
#: A number as a Nordic Excel writes and reads it (no thousands separator): "-0,25", "3".
_COMMA_NUMBER = re.compile(r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?")


class RunFileError(ValueError):
    """A run's file cannot be read; the message says which file and what to do."""


def csv_dialect(name: str | None) -> CsvDialect:
    if name is None:
        return CSV_DIALECTS[DEFAULT_CSV_DIALECT]
    try:
        return CSV_DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown CSV dialect {name!r}; use one of {', '.join(CSV_DIALECTS)}.") from None


def _needs_escape(text: str, dialect: CsvDialect) -> bool:
    # A string of escapes followed by a trigger is escaped too, so that the reverse is exact:
    # "'=x" (a note that really starts with an apostrophe) is written as "''=x".
    rest = text.lstrip(ESCAPE)
    # In the nordic dialect a text that reads as a comma number ("1,5") is escaped as well: Excel
    # would turn it into a number, and read_csv would take it for one.
    return rest.startswith(FORMULA_TRIGGERS) or (dialect.decimal == "," and _COMMA_NUMBER.fullmatch(rest) is not None)


def spreadsheet_safe(value, dialect: str | None = None):
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula.

    Non-strings are returned unchanged. ``from_spreadsheet_safe`` reverses it exactly.
    """
    if isinstance(value, str) and _needs_escape(value, csv_dialect(dialect)):
        return ESCAPE + value
    return value


def from_spreadsheet_safe(value, dialect: str | None = None):
    """Reverse ``spreadsheet_safe``: drop the ``'`` it added, and nothing else."""
    if isinstance(value, str) and value.startswith(ESCAPE) and _needs_escape(value[1:], csv_dialect(dialect)):
        return value[1:]
    return value


def _is_text_column(column: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def write_csv(frame: pd.DataFrame, path: str | Path, dialect: str | None = None) -> Path:
    """Write ``frame`` as UTF-8 CSV with a byte-order mark (no index, ``\\n`` line ends), every text
    cell made safe, in the given dialect (``standard`` by default).

    The BOM is what makes Excel read the file as UTF-8 on a double-click (without it, a Nordic
    Excel shows "Ã¸" for "ø"); pandas, Python's csv module (``utf-8-sig``) and R skip it. No
    ``sep=`` line: Excel honours it but then ignores the BOM, which breaks æøå again; a Nordic
    Excel splits the columns by itself when the separator is ';' (dialect ``nordic``).
    """
    path = Path(path)
    chosen = csv_dialect(dialect)
    safe = frame.copy()
    for name in safe.columns:
        if _is_text_column(safe[name]):
            safe[name] = safe[name].map(lambda v: spreadsheet_safe(v, chosen.name), na_action="ignore")
    # Python's csv writer (3.11) quotes a field holding "\n" but not one holding a lone "\r",
    # which readers then take for a line end: quote every text field when there is one.
    has_cr = any(safe[name].map(lambda v: isinstance(v, str) and "\r" in v).any()
                 for name in safe.columns if _is_text_column(safe[name]))
    safe.to_csv(path, index=False, lineterminator="\n", encoding="utf-8-sig", sep=chosen.sep,
                decimal=chosen.decimal, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)
    return path


def sniff_dialect(path: str | Path) -> CsvDialect:
    """The dialect of a CSV written by ``write_csv``, from its header line: ';' outside quotes
    means ``nordic``. (Our headers are identifiers; a user's header holding ';' is quoted.)"""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    fields = {sep: len(next(csv.reader([header], delimiter=sep), [])) for sep in (",", ";")}
    return CSV_DIALECTS["nordic" if fields[";"] > fields[","] else "standard"]


def _point_decimals(value):
    # Only a float written in the nordic dialect looks like this unescaped: a text that does is escaped.
    if isinstance(value, str) and _COMMA_NUMBER.fullmatch(value):
        return value.replace(",", ".")
    return value


def read_csv(path: str | Path, dtype=str, dialect: str | None = None) -> pd.DataFrame:
    """Read a CSV written by ``write_csv``: text cells as ``str``, empty cells as ``""``.

    ``dtype`` is passed to pandas (``str`` by default, so ids like ``007`` stay text); the
    escape of every text column is reversed, and numbers come back with a decimal point whatever
    the dialect (taken from the file's header line unless given), so readers never see the dialect.
    """
    import pandas as pd

    path = Path(path)
    try:
        chosen = csv_dialect(dialect) if dialect else sniff_dialect(path)
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=False, encoding="utf-8-sig", sep=chosen.sep,
                            decimal=chosen.decimal)
    except FileNotFoundError:
        raise RunFileError(f"{path}: file not found. Run `analysis run` first, or point --from "
                           "at the folder the run wrote.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path}: not a readable UTF-8 CSV ({error}). Write it again with "
                           "`analysis run`.") from None
    for name in frame.columns:
        if _is_text_column(frame[name]):
            column = frame[name]
            if chosen.decimal == ",":
                column = column.map(_point_decimals, na_action="ignore")
            frame[name] = column.map(lambda v: from_spreadsheet_safe(v, chosen.name), na_action="ignore")
    return frame
