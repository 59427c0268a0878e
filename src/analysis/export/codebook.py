"""The codebook of a run (Markdown and CSV) and its assignments as an Excel workbook.

The codebook has one entry per theme: id, name, definition, keywords, size and three quotes
(the theme's representative notes, in their original language). A seed theme's definition is
its description in the seed codebook; a new theme's definition is built from its keywords and
marked as a candidate, for the analyst to check and rename.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from analysis.export import N_QUOTES, RunFolder, read_run, run_csv_dialect, split_list, theme_quotes, write_csv, write_zip

CODEBOOK_MD = "codebook.md"
#: openpyxl's created and modified times in docProps/core.xml (both optional); left out of the XLSX.
_DATES = re.compile(rb"<dcterms:(created|modified)\b[^>]*>[^<]*</dcterms:\1>")
CODEBOOK_CSV = "codebook.csv"

#: Columns of assignments.csv / themes.csv that hold numbers (written as numbers to Excel).
NUMERIC_COLUMNS = frozenset({"theme_score", "theme_margin", "persona_score", "source_row", "char_start",
                             "char_end", "size"})
#: Columns that hold note text: wide and wrapped in the workbook.
TEXT_COLUMNS = frozenset({"text", "status_reason", "representative_note_ids", "keywords"})


def seeds_by_id(seed_themes: Iterable | None) -> dict:
    return {seed.id: seed for seed in seed_themes or []}


def theme_definition(theme: Mapping, seed=None) -> str:
    """What the theme means: the seed description, or a candidate definition from keywords."""
    if seed is not None:
        return seed.description
    keywords = split_list(theme.get("keywords", ""))
    if theme.get("kind") == "seed":
        return (f"Seed theme {theme['label']!r}; its description is in the seed codebook, "
                "which was not given to the export.")
    if not keywords:
        return "Candidate theme found inductively (no keywords). Check its notes, then name and define it."
    listed = ", ".join(keywords[:-1]) + f" and {keywords[-1]}" if len(keywords) > 1 else keywords[0]
    return (f"Candidate theme found inductively, not in the seed codebook: notes about {listed}. "
            "Check its quotes, then name and define it.")


def kind_label(kind: str) -> str:
    return "seed theme" if kind == "seed" else "new candidate theme"


def codebook_table(run: RunFolder, seed_themes=None) -> pd.DataFrame:
    """One row per theme: id, name, kind, definition, keywords, size, quotes."""
    seeds = seeds_by_id(seed_themes)
    notes_by_id = run.notes_by_id()
    rows = []
    for theme in run.themes.to_dict("records"):
        row = {"theme_id": theme["theme_id"], "name": theme["label"], "kind": theme["kind"],
               "definition": theme_definition(theme, seeds.get(theme["theme_id"])),
               "keywords": "; ".join(split_list(theme["keywords"])), "size": int(theme["size"] or 0)}
        quotes = theme_quotes(theme, notes_by_id)
        for number in range(1, N_QUOTES + 1):
            quote = quotes[number - 1] if number <= len(quotes) else {"note_id": "", "lang": "", "text": ""}
            row[f"quote_{number}"] = quote["text"]
            row[f"quote_{number}_note_id"] = quote["note_id"]
            row[f"quote_{number}_lang"] = quote["lang"]
        rows.append(row)
    columns = ["theme_id", "name", "kind", "definition", "keywords", "size"]
    columns += [f"quote_{n}{suffix}" for n in range(1, N_QUOTES + 1) for suffix in ("", "_note_id", "_lang")]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- Markdown

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d+[.)])(\s)")


def markdown_text(text: str) -> str:
    """Note text that Markdown shows as written: no headings, links, HTML or lists from it."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _MARKDOWN_SPECIAL.sub(r"\\\1", line)
        lines.append(_LIST_MARKER.sub(lambda m: f"{m.group(1)}{m.group(2)[:-1]}\\{m.group(2)[-1]}{m.group(3)}", line))
    return "\n".join(lines)


def _quote_block(quote: dict) -> list[str]:
    lines = [line.rstrip() for line in markdown_text(quote["text"].strip()).split("\n")]
    body = []
    for number, line in enumerate(lines):
        # A trailing backslash is a hard line break: a multi-line sticky note keeps its lines.
        follows = number + 1 < len(lines) and lines[number + 1] != ""
        body.append(">" if not line else f"> {line}\\" if follows else f"> {line}")
    return [*body, ">", f"> — {quote['note_id']} ({quote['lang']})", ""]


def codebook_markdown(run: RunFolder, table: pd.DataFrame) -> str:
    kinds = table["kind"].value_counts()
    themed = int((run.assignments["theme_id"] != "").sum())
    lines = [
        "# Codebook", "",
        f"{len(table)} themes ({int(kinds.get('seed', 0))} seed, {int(kinds.get('new', 0))} new candidate); "
        f"{themed} of {len(run.assignments)} notes carry a theme.",
        "Seed themes are defined by the seed codebook. New candidate themes were found inductively: "
        "their definitions are built from keywords, to be checked and renamed by the analyst. "
        "Quotes are the themes' representative notes, in their original language.", "",
    ]
    for row in table.to_dict("records"):
        lines += [f"## {markdown_text(row['name'])} (`{row['theme_id']}`)", "",
                  f"*{kind_label(row['kind']).capitalize()} · {row['size']} notes*", "",
                  f"**Definition.** {markdown_text(row['definition'])}", "",
                  f"**Keywords:** {markdown_text(', '.join(split_list(row['keywords']))) or '(none)'}", ""]
        quotes = [{"note_id": row[f"quote_{n}_note_id"], "lang": row[f"quote_{n}_lang"], "text": row[f"quote_{n}"]}
                  for n in range(1, N_QUOTES + 1) if row[f"quote_{n}_note_id"]]
        if quotes:
            lines += ["**Quotes**", ""]
            for quote in quotes:
                lines += _quote_block(quote)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_codebook(run_dir: str | Path, out_dir: str | Path, seed_themes=None) -> dict[str, Path]:
    """Write ``codebook.md`` and ``codebook.csv`` for the run in ``run_dir``; return their paths."""
    run = read_run(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = codebook_table(run, seed_themes)
    markdown = out_dir / CODEBOOK_MD
    markdown.write_text(codebook_markdown(run, table), encoding="utf-8", newline="\n")
    return {"markdown": markdown, "csv": write_csv(table, out_dir / CODEBOOK_CSV, dialect=run_csv_dialect(run))}


# --------------------------------------------------------------------------- Excel


def _cell_value(column: str, value: str):
    if column in NUMERIC_COLUMNS and value != "":
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and column not in {"theme_score", "theme_margin",
                                                                     "persona_score"} else number
    return value


def _column_width(column: str, values: pd.Series) -> float:
    if column in TEXT_COLUMNS:
        return 80
    longest = max([len(column), *(len(v) for v in values.head(500))])
    return min(longest + 2, 40)


def _write_sheet(sheet, frame: pd.DataFrame) -> None:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="305496")
    wrap = Alignment(wrap_text=True, vertical="top")
    for position, column in enumerate(frame.columns, start=1):
        cell = sheet.cell(row=1, column=position, value=str(column))
        cell.data_type = "s"
        cell.font, cell.fill = header_font, header_fill
        sheet.column_dimensions[get_column_letter(position)].width = _column_width(column, frame[column])
    for row_number, row in enumerate(frame.itertuples(index=False, name=None), start=2):
        for position, (column, value) in enumerate(zip(frame.columns, row), start=1):
            value = _cell_value(column, value)
            cell = sheet.cell(row=row_number, column=position)
            if isinstance(value, str):
                # openpyxl stores any string starting with "=" as a formula unless told otherwise,
                # and refuses control characters that XML cannot hold.
                cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
                cell.data_type = "s"
            else:
                cell.value = value
            if column in TEXT_COLUMNS:
                cell.alignment = wrap
    sheet.freeze_panes = "A2"
    if len(frame.columns):
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{max(1, len(frame) + 1)}"


def write_assignments_xlsx(run_dir: str | Path, out_path: str | Path) -> Path:
    """Write the run's assignments and themes as an Excel workbook, every text cell as text."""
    from openpyxl import Workbook

    run = read_run(run_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    assignments = workbook.active
    assignments.title = "assignments"
    _write_sheet(assignments, run.assignments)
    _write_sheet(workbook.create_sheet("themes"), run.themes)
    return _save_without_clock(workbook, out_path)


def _save_without_clock(workbook, out_path: Path) -> Path:
    """Save so that the same run gives the same bytes: openpyxl stamps the workbook's created and
    modified times (both optional in the file format); they are left out, and every zip entry
    gets the package's fixed time."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    members = []
    with zipfile.ZipFile(buffer) as saved:
        for name in saved.namelist():
            data = saved.read(name)
            if name == "docProps/core.xml":
                data = _DATES.sub(b"", data)
            members.append((name, data))
    return write_zip(out_path, members)

