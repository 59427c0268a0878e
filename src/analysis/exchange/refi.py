"""Reading REFI-QDA exchange files (QDA-XML 1.0): projects (``.qdpx``) and codebooks (``.qdc``).

An analyst brings notes coded in NVivo, ATLAS.ti or MAXQDA: ``read_qdpx`` turns a project into a
notes table (one row per coded selection, its codes as gold labels) and ``read_qdc`` a codebook
into seed themes. The writers of these formats are in ``analysis.export.refi``; this module
reads input and is below every stage that uses it (``themes.load_seed_themes``, the CLI's import).
Positions count code points of the plain text as stored, as the standard says.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

import pandas as pd

from analysis.files import RunFileError
from analysis.schema import CORE_COLUMNS, STATUS_EMPTY, STATUS_OK, UNDETERMINED, SeedTheme
from analysis.text import resolve_languages

SOURCES_DIR = "sources"
#: The line a written code description puts before the run's keywords (not part of the meaning).
KEYWORDS_LINE = "Keywords in this run:"


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text_of(element: ET.Element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "") if child is not None else ""


def _guid(value: str | None) -> str:
    return (value or "").strip().strip("{}").lower()


_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "ä": "a", "ö": "o", "ü": "u", "ß": "ss", "þ": "th",
                       "ð": "d", "œ": "oe", "ł": "l"})


def slugify(name: str) -> str:
    """An id from a code name: "Faste team rundt brukeren" -> "faste_team_rundt_brukeren"."""
    folded = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    slug = re.sub(r"[^a-z0-9]+", "_", folded.encode("ascii", "ignore").decode()).strip("_")
    if not slug:
        return "code"
    # "new_…" is reserved for the run's own candidate themes (see themes.load_seed_themes).
    return f"code_{slug}" if slug.startswith("new_") or slug == "new" else slug


@dataclass(frozen=True)
class Code:
    guid: str
    id: str
    name: str
    description: str
    parent_guid: str
    is_codable: bool
    colour: str


def _walk_codes(element: ET.Element, parent: Code | None, taken: set[str]) -> Iterator[Code]:
    for code in _children(element, "Code"):
        name = code.get("name", "")
        slug = slugify(name)
        candidates = [slug, *([f"{parent.id}_{slug}"] if parent else [])]
        code_id = next((c for c in candidates if c not in taken), None)
        number = 2
        while code_id is None:
            code_id = f"{slug}_{number}" if f"{slug}_{number}" not in taken else None
            number += 1
        taken.add(code_id)
        item = Code(_guid(code.get("guid")), code_id, name, _text_of(code, "Description").strip(),
                    parent.guid if parent else "", code.get("isCodable", "true").strip().lower() in ("true", "1"),
                    code.get("color", ""))
        yield item
        yield from _walk_codes(code, item, taken)


def codes_in(codebook: ET.Element | None) -> list[Code]:
    """Every code of a CodeBook element, depth first, with unique ids slugified from names."""
    codes_element = _child(codebook, "Codes") if codebook is not None else None
    return list(_walk_codes(codes_element, None, set())) if codes_element is not None else []


def _parse(data: bytes, where: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as error:
        raise RunFileError(f"{where}: not well-formed XML ({error}). Export the project again from the "
                          "QDA software.") from None


def _project_member(archive: zipfile.ZipFile, path: Path) -> str:
    candidates = [n for n in archive.namelist() if n.lower().endswith(".qde") and not n.startswith("__MACOSX")]
    if len(candidates) != 1:
        found = "none" if not candidates else ", ".join(candidates)
        raise RunFileError(f"{path}: a .qdpx must hold exactly one .qde project file (found {found}). "
                          "Export the project again as REFI-QDA (.qdpx).")
    return candidates[0]


def _source_text(archive: zipfile.ZipFile, base: PurePosixPath, source: ET.Element, where: str) -> str:
    inline = _child(source, "PlainTextContent")
    if inline is not None:
        return inline.text or ""
    location = source.get("plainTextPath", "")
    if not location:
        raise RunFileError(f"{where}: the source has neither plainTextPath nor PlainTextContent. "
                          "Export the project again with its sources.")
    name = location.split("://", 1)[-1].lstrip("/")
    members = {m.lower(): m for m in archive.namelist()}
    for candidate in (base / SOURCES_DIR / name, PurePosixPath(SOURCES_DIR) / name,
                      base / SOURCES_DIR / PurePosixPath(name).name):
        if str(candidate).lower() in members:
            raw = archive.read(members[str(candidate).lower()])
            return raw.decode("utf-8-sig", errors="replace")
    raise RunFileError(f"{where}: plain text {location!r} is not inside the .qdpx. Export the project "
                      "with its sources embedded (not linked), then import again.")


def _check_positions(text: str, selections: list[ET.Element], where: str) -> None:
    """Positions count code points of the plain text as stored (a CR LF is two), as the standard says."""
    for selection in selections:
        try:
            start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
        except (TypeError, ValueError):
            raise RunFileError(f"{where}, PlainTextSelection {selection.get('guid')}: startPosition and "
                              "endPosition must be integers. Export the project again.") from None
        if not 0 <= start <= end <= len(text):
            raise RunFileError(f"{where}, PlainTextSelection {selection.get('guid')}: endPosition {end} "
                              f"(start {start}) lies outside the source text ({len(text)} characters). The "
                              "project's text and codings do not match; export it again.")


@dataclass
class _Links:
    """Case names and variable values attached to sources and selections."""

    cases: dict[str, list[str]]
    values: dict[str, dict[str, str]]

    def for_ids(self, *guids: str) -> tuple[list[str], dict[str, str]]:
        cases, values = [], {}
        for guid in guids:  # later (more specific) ids win
            cases += [c for c in self.cases.get(guid, []) if c not in cases]
            values |= self.values.get(guid, {})
        return cases, values


def _variable_values(element: ET.Element, variables: dict[str, str]) -> dict[str, str]:
    values = {}
    for holder in _children(element, "VariableValue"):
        reference = _child(holder, "VariableRef")
        name = variables.get(_guid(reference.get("targetGUID")) if reference is not None else "", "")
        value = next((child.text or "" for child in holder if _local(child.tag).endswith("Value")), "")
        if name:
            values[name] = value.strip()
    return values


def _links(project: ET.Element) -> tuple[_Links, list[str]]:
    variables_element = _child(project, "Variables")
    variables = {_guid(v.get("guid")): v.get("name", "") for v in _children(variables_element, "Variable")} \
        if variables_element is not None else {}
    links = _Links({}, {})
    for source, _ in _sources_in(project):
        links.values.setdefault(_guid(source.get("guid")), {}).update(_variable_values(source, variables))
    cases_element = _child(project, "Cases")
    for case in _children(cases_element, "Case") if cases_element is not None else []:
        values = _variable_values(case, variables)
        for reference in [*_children(case, "SourceRef"), *_children(case, "SelectionRef")]:
            target = _guid(reference.get("targetGUID"))
            links.cases.setdefault(target, []).append(case.get("name", "") or _guid(case.get("guid")))
            links.values.setdefault(target, {}).update(values)
    return links, [name for name in variables.values() if name]


def _sources_in(project: ET.Element) -> Iterator[tuple[ET.Element, str]]:
    """(element holding the text, source name): TextSources and the text of PDF sources."""
    sources = _child(project, "Sources")
    for source in sources if sources is not None else []:
        name = source.get("name") or _guid(source.get("guid"))
        if _local(source.tag) == "TextSource":
            yield source, name
        elif _local(source.tag) == "PDFSource" and (representation := _child(source, "Representation")) is not None:
            yield representation, representation.get("name") or name


def _row(note_id, text, source_name, number, source_type, source_guid, start, end, codes, cases, values,
         selection_name) -> dict:
    empty = not text.strip()
    row = {
        "note_id": note_id, "text": text, "source_file": source_name, "source_row": number,
        "source_type": source_type, "doc_id": source_guid, "char_start": start, "char_end": end,
        "lang": UNDETERMINED, "lang_source": "undetermined",
        "status": STATUS_EMPTY if empty else STATUS_OK, "status_reason": "text is empty" if empty else "",
        "flags": "" if codes or source_type == "selection" else "uncoded_source",
        "gold_theme": codes[0].id if codes else "", "gold_theme_name": codes[0].name if codes else "",
        "gold_codes": "; ".join(code.id for code in codes), "selection_name": selection_name,
        "cases": "; ".join(cases),
    }
    return row | {f"var_{name}" if name in row else name: value for name, value in values.items()}


def _coded(element: ET.Element, codes: dict[str, Code]) -> list[Code]:
    found = []
    for coding in _children(element, "Coding"):
        reference = _child(coding, "CodeRef")
        code = codes.get(_guid(reference.get("targetGUID")) if reference is not None else "")
        if code is not None and code not in found:
            found.append(code)
    return found


def _source_rows(archive, base, source: ET.Element, name: str, codes: dict[str, Code], links: _Links,
                 where: str) -> list[dict]:
    guid = _guid(source.get("guid"))
    where = f"{where}, source {name!r}"
    selections = _children(source, "PlainTextSelection")
    text = _source_text(archive, base, source, where)
    _check_positions(text, selections, where)
    source_codes = _coded(source, codes)
    rows = []
    ordered = sorted(selections, key=lambda s: (int(s.get("startPosition")), int(s.get("endPosition"))))
    for number, selection in enumerate(ordered, start=1):
        start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
        selection_guid = _guid(selection.get("guid"))
        cases, values = links.for_ids(guid, selection_guid)
        rows.append(_row(selection_guid, text[start:end], name, number, "selection", guid, start, end,
                         _coded(selection, codes) or source_codes, cases, values, selection.get("name", "")))
    if not selections:
        cases, values = links.for_ids(guid)
        rows.append(_row(guid, text, name, 1, "document", guid, 0, len(text), source_codes, cases, values, ""))
    return rows


def _set_languages(notes: pd.DataFrame) -> None:
    """A valid ``lang`` variable, else detection, else the source's majority, else ``und``."""
    given = notes["var_lang"].tolist() if "var_lang" in notes.columns else [""] * len(notes)
    lang, source, _ = resolve_languages(given, notes["text"].tolist(), notes["status"].eq(STATUS_OK).tolist(),
                                        notes["source_file"].tolist())
    notes["lang"], notes["lang_source"] = lang, source


def read_qdpx(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a REFI-QDA project: (notes, codes).

    ``notes`` has one row per PlainTextSelection (its text cut from the source's plain text;
    ``note_id`` is the selection's GUID), plus one row per source without selections. It has
    the pipeline's core columns, the first code in ``gold_theme`` (as an id, see ``slugify``)
    with its name in ``gold_theme_name`` and all codes in ``gold_codes``, the names of linked
    cases in ``cases``, and the variable values of the source and its cases as columns.
    ``codes`` has guid, id, name, description, parent (name), parent_guid, is_codable, colour.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise RunFileError(f"{path}: file not found. Give the .qdpx the QDA software exported.") from None
    except zipfile.BadZipFile:
        raise RunFileError(f"{path}: not a ZIP archive, so not a .qdpx project. Export the project again "
                          "as REFI-QDA (.qdpx).") from None
    with archive:
        member = _project_member(archive, path)
        where = f"{path}: {member}"
        project = _parse(archive.read(member), where)
        if _local(project.tag) != "Project":
            raise RunFileError(f"{where}: the root element is {_local(project.tag)!r}, not 'Project'. "
                              "Give a REFI-QDA project (.qdpx).")
        codes = codes_in(_child(project, "CodeBook"))
        by_guid = {code.guid: code for code in codes}
        links, variable_names = _links(project)
        base = PurePosixPath(member).parent
        rows = [row for source, name in _sources_in(project)
                for row in _source_rows(archive, base, source, name, by_guid, links, where)]
    return _notes_frame(rows, variable_names), _codes_frame(codes)


def _notes_frame(rows: list[dict], variable_names: list[str]) -> pd.DataFrame:
    extra = ["gold_theme", "gold_theme_name", "gold_codes", "selection_name", "cases"]
    attributes = list(dict.fromkeys(key for row in rows for key in row if key not in CORE_COLUMNS
                                    and key not in extra))
    notes = pd.DataFrame.from_records(rows, columns=[*CORE_COLUMNS, *extra, *attributes])
    notes[attributes] = notes[attributes].fillna("")
    integers = {"source_row", "char_start", "char_end"}
    notes = notes.astype({c: "int64" if c in integers else "str" for c in notes.columns})
    if len(notes):
        _set_languages(notes)
    return notes.reset_index(drop=True)


def _codes_frame(codes: list[Code]) -> pd.DataFrame:
    names = {code.guid: code.name for code in codes}
    return pd.DataFrame({
        "guid": [c.guid for c in codes], "id": [c.id for c in codes], "name": [c.name for c in codes],
        "description": [c.description for c in codes], "parent": [names.get(c.parent_guid, "") for c in codes],
        "parent_guid": [c.parent_guid for c in codes], "is_codable": [c.is_codable for c in codes],
        "colour": [c.colour for c in codes],
    })


def notes_table(notes: pd.DataFrame) -> pd.DataFrame:
    """The imported notes as a notes file for ``analysis run --notes``: ``note_id``, ``text``,
    ``lang`` and the attributes, with the source's name and position under non-reserved names."""
    table = notes.rename(columns={"source_file": "qda_source", "doc_id": "qda_source_guid",
                                  "char_start": "qda_start", "char_end": "qda_end", "source_type": "qda_unit"})
    dropped = {"source_row", "lang_source", "status", "status_reason", "flags"}
    return table[[c for c in table.columns if c not in dropped]]


def write_notes_csv(notes: pd.DataFrame, path: str | Path) -> Path:
    """Write imported notes as a CSV the pipeline reads as notes (text kept exactly as cut)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes_table(notes).to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
    return path


def _definition(code: Code) -> str:
    """The code's description without the keyword line this module adds (run output, not meaning)."""
    description = code.description.split(KEYWORDS_LINE)[0].strip() if KEYWORDS_LINE in code.description \
        else code.description.strip()
    return description or code.name


def read_qdc(path: str | Path) -> list[SeedTheme]:
    """Seed themes from a REFI-QDA codebook (``.qdc``, or the codebook inside a ``.qdpx``).

    Every codable code becomes a seed theme: id slugified from its name (unique, as in
    ``read_qdpx``), name, and description (the code's description, else its name).
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{path}: codebook not found. Check --seed-themes or [paths] seed_themes.")
    codebook = _codebook_element(path)
    if codebook is None:
        raise RunFileError(f"{path}: no CodeBook element. Give a REFI-QDA codebook (.qdc) or project (.qdpx).")
    seeds = [SeedTheme(code.id, code.name.strip() or code.id, " ".join(_definition(code).split()))
             for code in codes_in(codebook) if code.is_codable]
    if not seeds:
        raise RunFileError(f"{path}: the codebook has no codable codes. Add codes or leave out --seed-themes.")
    return seeds


def _codebook_element(path: Path) -> ET.Element | None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = _project_member(archive, path)
            root = _parse(archive.read(member), f"{path}: {member}")
        codebook = _child(root, "CodeBook")
    else:
        root = _parse(path.read_bytes(), str(path))
        codebook = root if _local(root.tag) == "CodeBook" else _child(root, "CodeBook")
    return codebook


__all__ = ["read_qdpx", "read_qdc", "write_notes_csv", "notes_table", "slugify", "codes_in", "SOURCES_DIR",
           "KEYWORDS_LINE"]
