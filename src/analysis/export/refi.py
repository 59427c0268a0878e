"""REFI-QDA exchange (QDA-XML 1.0): a run as a ``.qdpx`` project or ``.qdc`` codebook, and back.

A ``.qdpx`` file is a ZIP holding one ``project.qde`` (XML, namespace
``urn:QDA-XML:project:1.0``) and a ``sources/`` folder with the plain text of every source.
The export writes:

- codes = themes, under two parent codes that cannot be coded ("Seed themes", "New candidate
  themes"), each with its definition and keywords, and a note with its label and numbers;
- one ``TextSource`` per notes file or document, whose plain text is the run's notes joined by
  blank lines (the privacy-masked text of the run, never the raw file); every note is a
  ``PlainTextSelection`` coded with its theme. Positions count Unicode code points, as the
  standard says;
- cases = personas and participant roles, linked to the notes; note attributes as typed
  variables;
- the run's parameters as a project note.

GUIDs are uuid5 of stable ids and the ZIP has fixed timestamps, so exporting the same run
twice gives the same bytes. No local path is written.

``read_qdpx`` reads a project from NVivo, ATLAS.ti, MAXQDA, QualCoder (or this module) into a
notes table the pipeline can run on, with the human coding in ``gold_theme``; ``read_qdc``
reads a codebook as seed themes.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

import pandas as pd

from analysis import __version__
from analysis.export import RunFolder, read_run, split_list, write_zip
from analysis.exchange.refi import KEYWORDS_LINE, SOURCES_DIR
from analysis.export.codebook import seeds_by_id, theme_definition
from analysis.files import sha256_file
from analysis.schema import NO_PERSONA

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_FILE = "project.qde"
INTERNAL = "internal://"
#: Notes of one source are joined by a blank line in its plain text.
NOTE_SEPARATOR = "\n\n"
ORIGIN = f"analysis {__version__}"
#: The namespace of every GUID this module writes (uuid5 of the stable id of the thing).
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:analysis:refi-qda")

SEED_PARENT = "Seed themes"
NEW_PARENT = "New candidate themes"
SEED_COLOURS = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
                "#7F7F7F", "#BCBD22", "#17BECF")
NEW_COLOUR = "#A0A0A0"
#: Starts the paragraph of a code's description that lists the theme's keywords in the run.

#: assignments.csv columns that are not note attributes (they are the run's output or core).
_RUN_COLUMNS = frozenset({
    "note_id", "theme_id", "theme_label", "theme_score", "theme_margin", "secondary_theme_id",
    "persona_id", "persona_method", "persona_score", "status", "status_reason", "source_file",
    "source_row", "doc_id", "char_start", "char_end", "text", "lang_source", "flags",
})
#: Characters XML 1.0 cannot hold.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_INTEGER = re.compile(r"[+-]?\d{1,18}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def stable_guid(kind: str, key: str) -> str:
    """The GUID of ``kind`` (theme, note, source, …) with stable id ``key``."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{key}"))


USER_GUID = stable_guid("user", "analysis")


# =========================================================================== export


def _clean(text) -> str:
    return _XML_ILLEGAL.sub("", str(text))


def _element(parent: ET.Element | None, tag: str, text: str | None = None, **attributes) -> ET.Element:
    attrs = {key: _clean(value) for key, value in attributes.items() if value is not None}
    element = ET.Element(tag, attrs) if parent is None else ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = _clean(text)
    return element


def plain_text(text: str) -> str:
    """Note text with ``\\n`` line ends: tools that read the .txt with universal newlines
    (QualCoder, Qt) would otherwise shift every later position by one per CR LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def portable_name(source_file: str) -> str:
    """The source's path as recorded by the run, without any local absolute part."""
    path = source_file.replace("\\", "/")
    if path.startswith(("/", "~")) or re.match(r"[A-Za-z]:/", path):
        return PurePosixPath(path).name
    return path


@dataclass(frozen=True)
class Selection:
    note_id: str
    start: int
    end: int


@dataclass(frozen=True)
class SourceText:
    """One notes file or document: its plain text and where each note is in it."""

    source_file: str
    name: str
    guid: str
    text: str
    selections: tuple[Selection, ...]

    @property
    def member(self) -> str:
        return f"{SOURCES_DIR}/{self.guid}.txt"


def _note_order(notes: pd.DataFrame) -> pd.DataFrame:
    keys = pd.DataFrame({
        "sheet": notes["sheet"] if "sheet" in notes.columns else "",
        "row": pd.to_numeric(notes["source_row"], errors="coerce").fillna(0),
        "start": pd.to_numeric(notes.get("char_start", pd.Series(-1, index=notes.index)), errors="coerce").fillna(-1),
        "note_id": notes["note_id"],
    }, index=notes.index)
    return notes.loc[keys.sort_values(["sheet", "row", "start", "note_id"], kind="stable").index]


def source_texts(assignments: pd.DataFrame) -> list[SourceText]:
    """One source per notes file or document, built from the notes (empty notes left out)."""
    written = assignments[assignments["text"].str.strip() != ""]
    names = {f: portable_name(f) for f in sorted(set(written["source_file"]))}
    basenames = Counter(PurePosixPath(n).name for n in names.values())
    sources = []
    for source_file, name in names.items():
        notes = _note_order(written[written["source_file"] == source_file])
        parts, selections, position = [], [], 0
        for note_id, text in zip(notes["note_id"], notes["text"]):
            if parts:
                parts.append(NOTE_SEPARATOR)
                position += len(NOTE_SEPARATOR)
            text = plain_text(text)
            parts.append(text)
            selections.append(Selection(note_id, position, position + len(text)))
            position += len(text)
        short = PurePosixPath(name).name
        sources.append(SourceText(source_file, short if basenames[short] == 1 else name.replace("/", "_"),
                                  stable_guid("source", name), "".join(parts), tuple(selections)))
    return sources


# --------------------------------------------------------------------------- codes


@dataclass(frozen=True)
class ThemeCode:
    theme_id: str
    name: str
    kind: str
    description: str
    guid: str
    colour: str
    note_guid: str


def theme_codes(run: RunFolder, seed_themes=None) -> list[ThemeCode]:
    seeds = seeds_by_id(seed_themes)
    codes = []
    for number, theme in enumerate(run.themes.to_dict("records")):
        keywords = split_list(theme["keywords"])
        description = theme_definition(theme, seeds.get(theme["theme_id"]))
        if keywords:
            description += f"\n\n{KEYWORDS_LINE} {', '.join(keywords)}."
        colour = SEED_COLOURS[number % len(SEED_COLOURS)] if theme["kind"] == "seed" else NEW_COLOUR
        codes.append(ThemeCode(theme["theme_id"], theme["label"], theme["kind"], description,
                               stable_guid("theme", theme["theme_id"]), colour,
                               stable_guid("theme-note", theme["theme_id"])))
    return codes


_PARENTS = (
    (SEED_PARENT, "seed", "Themes from the seed codebook. A note carries one when it is close enough "
                          "to the theme's prototype (seed_threshold)."),
    (NEW_PARENT, "new", "Candidate themes found inductively among the notes no seed theme fits. "
                        "Check, rename and define them."),
)


def _add_codes(codes_element: ET.Element, codes: list[ThemeCode], with_notes: bool) -> None:
    for name, kind, description in _PARENTS:
        parent = _element(codes_element, "Code", guid=stable_guid("code-group", kind), name=name,
                          isCodable="false")
        _element(parent, "Description", description)
        for code in (c for c in codes if (c.kind == "seed") == (kind == "seed")):
            child = _element(parent, "Code", guid=code.guid, name=code.name, isCodable="true", color=code.colour)
            _element(child, "Description", code.description)
            if with_notes:
                _element(child, "NoteRef", targetGUID=code.note_guid)


# --------------------------------------------------------------------------- variables


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str  # Text | Integer | Date
    guid: str


def _variable_kind(values: Iterable[str]) -> str:
    values = [v for v in values if v != ""]
    if values and all(_INTEGER.fullmatch(v) for v in values):
        return "Integer"
    if values and all(_ISO_DATE.fullmatch(v) and _valid_date(v) for v in values):
        return "Date"
    return "Text"


def _valid_date(value: str) -> bool:
    try:
        pd.Timestamp(value)
    except ValueError:
        return False
    return True


def note_variables(assignments: pd.DataFrame) -> list[Variable]:
    """The note attributes (input columns, lang, source_type) that have a value somewhere."""
    names = [c for c in assignments.columns if c not in _RUN_COLUMNS and (assignments[c] != "").any()]
    return [Variable(name, _variable_kind(assignments[name]), stable_guid("variable", name)) for name in names]


_VALUE_TAGS = {"Text": "TextValue", "Integer": "IntegerValue", "Date": "DateValue"}


def _add_value(parent: ET.Element, variable: Variable, value: str) -> None:
    holder = _element(parent, "VariableValue")
    _element(holder, "VariableRef", targetGUID=variable.guid)
    _element(holder, _VALUE_TAGS[variable.kind], str(int(value)) if variable.kind == "Integer" else value)


def _constant_values(notes: pd.DataFrame, variables: list[Variable]) -> list[tuple[Variable, str]]:
    """The attributes every note of a source shares: they become the source's values."""
    constant = []
    for variable in variables:
        values = set(notes[variable.name])
        if len(values) == 1 and (value := values.pop()) != "":
            constant.append((variable, value))
    return constant


# --------------------------------------------------------------------------- sources


def _selection_description(note: dict, variables: list[Variable]) -> str:
    lines = [f"note_id: {note['note_id']}", f"status: {note['status']}"]
    if note["theme_id"]:
        lines.append(f"theme: {note['theme_id']} (score {note['theme_score']}, margin {note['theme_margin']})")
    if note.get("secondary_theme_id"):
        lines.append(f"secondary theme: {note['secondary_theme_id']}")
    if note["status_reason"]:
        lines.append(f"reason: {note['status_reason']}")
    if note.get("persona_id", NO_PERSONA) != NO_PERSONA:
        lines.append(f"persona: {note['persona_id']} ({note['persona_method']}, score {note['persona_score']})")
    lines += [f"{v.name}: {note[v.name]}" for v in variables if note[v.name] != ""]
    return "\n".join(lines)


def _add_sources(project: ET.Element, run: RunFolder, sources: list[SourceText], codes: list[ThemeCode],
                 variables: list[Variable]) -> None:
    code_guids = {code.theme_id: code.guid for code in codes}
    notes = run.assignments.set_index("note_id", drop=False)
    element = _element(project, "Sources")
    for source in sources:
        text_source = _element(element, "TextSource", guid=source.guid, name=source.name,
                               plainTextPath=f"{INTERNAL}{source.guid}.txt", creatingUser=USER_GUID)
        count = len(source.selections)
        _element(text_source, "Description",
                 f"{count} note{'s' if count != 1 else ''} from {portable_name(source.source_file)}, "
                 "joined by blank lines; the text is the run's (privacy-masked) note text.")
        for selection in source.selections:
            note = notes.loc[selection.note_id].to_dict()
            part = _element(text_source, "PlainTextSelection", guid=stable_guid("note", selection.note_id),
                            name=selection.note_id, startPosition=str(selection.start),
                            endPosition=str(selection.end), creatingUser=USER_GUID)
            _element(part, "Description", _selection_description(note, variables))
            if note["theme_id"] in code_guids:
                coding = _element(part, "Coding", guid=stable_guid("coding", f"{selection.note_id}|{note['theme_id']}"),
                                  creatingUser=USER_GUID)
                _element(coding, "CodeRef", targetGUID=code_guids[note["theme_id"]])
        shared = _constant_values(notes.loc[[s.note_id for s in source.selections]], variables)
        for variable, value in shared:
            _add_value(text_source, variable, value)


# --------------------------------------------------------------------------- cases


def _persona_description(persona, links: pd.DataFrame) -> str:
    methods = links["persona_method"].value_counts().sort_index()
    counted = ", ".join(f"{method} {count}" for method, count in methods.items())
    text = f"{len(links)} notes linked by the run ({counted or 'none'})."
    if persona is None:
        return f"Persona. {text}"
    needs = "; ".join(need.text for need in persona.needs)
    site = f"Site: {persona.site}." if persona.site else ""
    return " ".join(part for part in (f"Persona {persona.name} ({persona.role}).", persona.description,
                                      f"Needs: {needs}." if needs else "", site, text) if part)


def _add_cases(project: ET.Element, run: RunFolder, sources: list[SourceText], variables: list[Variable],
               personas) -> None:
    in_selections = {s.note_id for source in sources for s in source.selections}
    notes = run.assignments[run.assignments["note_id"].isin(in_selections)]
    by_name = {v.name: v for v in variables}
    known = {p.id: p for p in personas or []}
    cases = []
    linked = notes[notes["persona_id"].ne(NO_PERSONA) & notes["persona_id"].ne("")] \
        if "persona_id" in notes.columns else notes.iloc[0:0]
    for persona_id in [*known, *sorted(set(linked["persona_id"]) - set(known))]:
        persona = known.get(persona_id)
        links = linked[linked["persona_id"] == persona_id]
        # No variable values on persona cases: an importer would pass them on to every linked
        # note (a Mariestad note linked to a Bærum persona would get site=baerum).
        cases.append((stable_guid("case-persona", persona_id), persona.name if persona else persona_id,
                      _persona_description(persona, links), [], links["note_id"]))
    if "participant_role" in by_name:
        role = by_name["participant_role"]
        for value in sorted(set(notes["participant_role"]) - {""}):
            members = notes[notes["participant_role"] == value]
            cases.append((stable_guid("case-role", value), f"participant_role: {value}",
                          f"Notes written by or about participants in the role {value!r} ({len(members)} notes).",
                          [(role, value)], members["note_id"]))
    if not cases:
        return
    element = _element(project, "Cases")
    for guid, name, description, values, note_ids in cases:
        case = _element(element, "Case", guid=guid, name=name)
        _element(case, "Description", description)
        for variable, value in values:
            _add_value(case, variable, value)
        for note_id in sorted(note_ids):
            _element(case, "SelectionRef", targetGUID=stable_guid("note", note_id))


# --------------------------------------------------------------------------- notes (memos)


def _is_local_path(value: str) -> bool:
    return value.startswith(("/", "~", "\\\\")) or bool(re.match(r"[A-Za-z]:[\\/]", value))


def _flatten(value, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for number, item in enumerate(value, start=1):
            yield from _flatten(item, f"{prefix}[{number}]")
    else:
        items = value if isinstance(value, list) else [value]
        shown = [PurePosixPath(str(v).replace("\\", "/")).name if isinstance(v, str) and _is_local_path(v)
                 else ("" if v is None else str(v)) for v in items]
        yield prefix, ", ".join(shown)


def run_parameters(run: RunFolder) -> str:
    """The run's parameters as text: the manifest when there is one, else what the folder says."""
    counts = run.assignments["status"].value_counts().sort_index()
    lines = [f"Exported by {ORIGIN} from the run folder {run.path.name!r}.",
             f"Notes: {len(run.assignments)} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
             f"themes: {len(run.themes)}.", ""]
    if run.manifest:
        lines.append("Run parameters (manifest.json):")
        lines += [f"{key}: {value}" for key, value in _flatten(run.manifest)]
        return "\n".join(lines)
    lines.append("manifest.json was not found; parameters from the run folder:")
    if run.k_selection is not None and "chosen" in run.k_selection.columns:
        chosen = run.k_selection[run.k_selection["chosen"].str.lower() == "true"]
        if len(chosen):
            lines.append(f"number of new themes (k): {chosen['k'].iloc[0]}, chosen by graph modularity")
    for key in ("similarity_threshold", "need_threshold", "why"):
        if key in run.persona_report:
            lines.append(f"personas.{key}: {run.persona_report[key]}")
    for name in ("assignments.csv", "themes.csv"):
        lines.append(f"sha256 {name}: {sha256_file(run.path / name)}")
    return "\n".join(lines)


def _theme_note(code: ThemeCode, theme: dict) -> str:
    return "\n".join([
        f"Theme: {theme['label']}", f"Id: {theme['theme_id']}",
        f"Kind: {'seed theme' if theme['kind'] == 'seed' else 'new candidate theme (inductive)'}",
        f"Notes: {theme['size']}", f"Keywords: {', '.join(split_list(theme['keywords']))}",
        f"Representative notes: {', '.join(split_list(theme['representative_note_ids']))}",
    ])


def _add_notes(project: ET.Element, run: RunFolder, codes: list[ThemeCode]) -> str:
    element = _element(project, "Notes")
    guid = stable_guid("run-note", "parameters")
    note = _element(element, "Note", guid=guid, name="Run parameters", creatingUser=USER_GUID)
    _element(note, "PlainTextContent", run_parameters(run))
    themes = {row["theme_id"]: row for row in run.themes.to_dict("records")}
    for code in codes:
        note = _element(element, "Note", guid=code.note_guid, name=f"Theme: {code.name}", creatingUser=USER_GUID)
        _element(note, "PlainTextContent", _theme_note(code, themes[code.theme_id]))
    return guid


# --------------------------------------------------------------------------- writing


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def project_xml(run: RunFolder, sources: list[SourceText], seed_themes=None, personas=None,
                name: str | None = None) -> bytes:
    """The ``project.qde`` of a run, as UTF-8 bytes."""
    project = _element(None, "Project", xmlns=PROJECT_NS, name=name or f"analysis run {run.path.name}",
                       origin=ORIGIN, creatingUserGUID=USER_GUID)
    users = _element(project, "Users")
    _element(users, "User", guid=USER_GUID, name="analysis (automatic coding)", id="analysis")
    codes = theme_codes(run, seed_themes)
    _add_codes(_element(_element(project, "CodeBook"), "Codes"), codes, with_notes=True)
    variables = note_variables(run.assignments)
    if variables:
        element = _element(project, "Variables")
        for variable in variables:
            item = _element(element, "Variable", guid=variable.guid, name=variable.name,
                            typeOfVariable=variable.kind)
            _element(item, "Description", f"Note attribute {variable.name!r} from the input files.")
    _add_cases(project, run, sources, variables, personas)
    if sources:
        _add_sources(project, run, sources, codes, variables)
    parameters = _add_notes(project, run, codes)
    _element(project, "Description", f"Themes and personas from an analysis run ({ORIGIN}). Codes are "
                                     "themes; cases are personas and participant roles; every note is a "
                                     "coded selection of its source. The coding is automatic.")
    _element(project, "NoteRef", targetGUID=parameters)
    return _xml_bytes(project)


def write_qdpx(run_dir: str | Path, out_path: str | Path, seed_themes=None, personas=None) -> Path:
    """Write the run in ``run_dir`` as a REFI-QDA project (``.qdpx``) at ``out_path``.

    ``seed_themes`` (list of SeedTheme) gives the seed themes' descriptions; ``personas``
    (list of Persona) the personas' names and descriptions. Both are optional.
    """
    run = read_run(run_dir)
    sources = source_texts(run.assignments)
    members: list[tuple[str, bytes | None]] = [
        (PROJECT_FILE, project_xml(run, sources, seed_themes, personas)), (f"{SOURCES_DIR}/", None)]
    members += [(source.member, source.text.encode("utf-8")) for source in sources]
    return write_zip(Path(out_path), members)


def codebook_xml(run: RunFolder, seed_themes=None) -> bytes:
    codebook = _element(None, "CodeBook", xmlns=CODEBOOK_NS, origin=ORIGIN)
    _add_codes(_element(codebook, "Codes"), theme_codes(run, seed_themes), with_notes=False)
    return _xml_bytes(codebook)


def write_qdc(run_dir: str | Path, out_path: str | Path, seed_themes=None) -> Path:
    """Write the run's themes as a REFI-QDA codebook (``.qdc``) at ``out_path``."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(codebook_xml(read_run(run_dir), seed_themes))
    return out_path


__all__ = ["write_qdpx", "write_qdc", "stable_guid", "source_texts", "project_xml", "codebook_xml", "PROJECT_NS",
           "CODEBOOK_NS"]
