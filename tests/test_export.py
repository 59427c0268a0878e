"""Exports of a finished run: spreadsheet safety, REFI-QDA project and codebook, Markdown/CSV
codebook and the Excel workbook; and importing REFI-QDA projects back as notes.

The run is the real pipeline with the offline e5 model on the end-to-end fixture plus
``tests/fixtures/export/tricky_notes.csv`` (emoji, multi-line notes, æøå/äö, notes starting
with ``=``, ``+``, ``-``, ``@`` and ``'=``).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from analysis import outputs, pipeline
from analysis.config import load_config
from analysis.embed.cache import CachedEmbedder
from analysis.evaluate import gold_agreement
from analysis.export import (FORMULA_TRIGGERS, ExportError, from_spreadsheet_safe, read_csv, read_run,
                             spreadsheet_safe, write_csv)
from analysis.export.codebook import write_assignments_xlsx, write_codebook
from analysis.exchange.refi import read_qdc, read_qdpx, slugify, write_notes_csv
from analysis.export.refi import PROJECT_NS, plain_text, source_texts, stable_guid, write_qdc, write_qdpx
from analysis.load import load_notes
from analysis.personas import load_personas
from analysis.schema import CORE_COLUMNS
from analysis.themes import load_seed_themes

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "tests" / "fixtures" / "e2e"
TRICKY = ROOT / "tests" / "fixtures" / "export" / "tricky_notes.csv"
PERSONAS = ROOT / "data" / "raw" / "personas.yml"
SEEDS = ROOT / "data" / "raw" / "seed_themes.yml"
REFI = Path("/work/shared/refi-qda")
if not REFI.is_dir():  # the shared folder sits next to the project
    REFI = ROOT.parent / "shared" / "refi-qda"
NVIVO_SAMPLE = REFI / "nvivo15-export-sample.qdpx"
NS = {"q": PROJECT_NS}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export_project")
    notes = folder / "notes"
    shutil.copytree(E2E, notes)
    shutil.copy(TRICKY, notes / "tricky_notes.csv")
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]')
    config = config.replace('"data/raw/personas.yml"', f'"{PERSONAS.as_posix()}"')
    config = config.replace('"data/raw/seed_themes.yml"', f'"{SEEDS.as_posix()}"')
    # A stricter seed threshold leaves enough notes unmatched for a new candidate theme (and a k choice).
    config = re.sub(r"(?m)^(# )?seed_threshold = [0-9.]+", "seed_threshold = 0.12", config)
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def embedder(e5, tmp_path_factory) -> CachedEmbedder:
    """The session's e5 model behind a throwaway cache, so the import test's second run is quick."""
    return CachedEmbedder(e5, tmp_path_factory.mktemp("embedding_cache"), progress=False)


@pytest.fixture(scope="module")
def run_dir(project, embedder) -> Path:
    config = load_config(project / "analysis.toml")
    result = pipeline.run(config, embedder=embedder, progress=False)
    out = project / "out"
    outputs.write_outputs(result, out)
    return out


@pytest.fixture(scope="module")
def seeds():
    return load_seed_themes(SEEDS)


@pytest.fixture(scope="module")
def personas():
    return load_personas(PERSONAS)


@pytest.fixture(scope="module")
def assignments(run_dir) -> pd.DataFrame:
    return read_run(run_dir).assignments


@pytest.fixture(scope="module")
def qdpx(run_dir, seeds, personas, tmp_path_factory) -> Path:
    return write_qdpx(run_dir, tmp_path_factory.mktemp("qdpx") / "run.qdpx", seed_themes=seeds, personas=personas)


@pytest.fixture(scope="module")
def project_tree(qdpx) -> etree._Element:
    with zipfile.ZipFile(qdpx) as archive:
        return etree.fromstring(archive.read("project.qde"))


def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(REFI / name)))


# --------------------------------------------------------------------------- spreadsheet safety


DANGEROUS = ['=HYPERLINK("http://x")', "+47 912 34 567", "-minus", "@mention", "\tindented", "\rreturn",
             "'=already quoted", "''@twice", "'plain apostrophe", "plain", "", "æøå äö 😊"]


def test_spreadsheet_safe_values_are_never_formulas_and_reverse_exactly():
    for value in DANGEROUS:
        safe = spreadsheet_safe(value)
        assert not safe.startswith(FORMULA_TRIGGERS), value
        assert from_spreadsheet_safe(safe) == value
    assert spreadsheet_safe("=1+1") == "'=1+1"
    assert spreadsheet_safe("'=1+1") == "''=1+1"
    assert spreadsheet_safe("'plain") == "'plain"
    assert spreadsheet_safe(3.5) == 3.5 and from_spreadsheet_safe(None) is None


@given(st.text())
def test_spreadsheet_safe_round_trips_any_text(text):
    safe = spreadsheet_safe(text)
    assert from_spreadsheet_safe(safe) == text
    assert not safe.startswith(FORMULA_TRIGGERS)


def test_csv_round_trip_keeps_dangerous_notes_as_text(tmp_path):
    frame = pd.DataFrame({"note_id": [f"n{i:03d}" for i in range(len(DANGEROUS))], "text": DANGEROUS,
                          "score": [0.5 - i for i in range(len(DANGEROUS))]})
    path = write_csv(frame, tmp_path / "notes.csv")
    raw = path.read_bytes()
    assert b"\r\n" not in raw.replace(b'"\rreturn"', b"")
    cells = [cell for row in csv.reader(io.StringIO(raw.decode("utf-8"), newline="")) for cell in row[:2]]
    assert not any(cell.startswith(FORMULA_TRIGGERS) for cell in cells)
    back = read_csv(path)
    assert back["text"].tolist() == DANGEROUS
    assert back["note_id"].tolist() == frame["note_id"].tolist()  # ids stay text ("n000")
    assert back["score"].astype(float).tolist() == frame["score"].tolist()  # numbers are not escaped


# --------------------------------------------------------------------------- qdpx: structure


def test_qdpx_holds_one_project_and_a_sources_folder(qdpx):
    names = zipfile.ZipFile(qdpx).namelist()
    assert names[0] == "project.qde" and names.count("project.qde") == 1
    assert "sources/" in names
    assert all(n == "project.qde" or n.startswith("sources/") for n in names)
    texts = [n for n in names if n.startswith("sources/") and n != "sources/"]
    assert texts and all(n.endswith(".txt") for n in texts)


def test_project_validates_against_the_refi_schema(project_tree):
    schema = _schema("Project.xsd")
    assert schema.validate(project_tree), schema.error_log


def test_nvivo_sample_validates_so_the_schema_check_is_meaningful():
    with zipfile.ZipFile(NVIVO_SAMPLE) as archive:
        assert _schema("Project.xsd").validate(etree.fromstring(archive.read("project.qde")))
    broken = etree.fromstring(f'<Project xmlns="{PROJECT_NS}"><Sources><TextSource guid="x"/></Sources></Project>')
    assert not _schema("Project.xsd").validate(broken)


def _sources(qdpx, tree) -> dict[str, tuple[etree._Element, str]]:
    with zipfile.ZipFile(qdpx) as archive:
        texts = {}
        for source in tree.iterfind(".//q:Sources/q:TextSource", NS):
            path = source.get("plainTextPath")
            assert path.startswith("internal://")
            texts[source.get("guid")] = (source, archive.read("sources/" + path[len("internal://"):]).decode("utf-8"))
    return texts


def test_every_selection_points_exactly_at_its_note(qdpx, project_tree, assignments):
    notes = assignments.set_index("note_id")
    seen = []
    for source, text in _sources(qdpx, project_tree).values():
        for selection in source.iterfind("q:PlainTextSelection", NS):
            note_id = selection.get("name")
            start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
            assert text[start:end] == plain_text(notes.loc[note_id, "text"]), note_id
            assert selection.get("guid") == stable_guid("note", note_id)
            seen.append(note_id)
    written = assignments.loc[assignments["text"].str.strip() != "", "note_id"]
    assert sorted(seen) == sorted(written)  # every non-empty note once, empty notes left out
    assert {"X-001", "X-002", "X-007", "X-008"} <= set(seen)
    assert "\n" in notes.loc["X-002", "text"] and "😊" in notes.loc["X-001", "text"]
    # Offsets count code points: the ZWJ family emoji is 5 of them, the skin-toned one 2.
    assert len("👨‍👩‍👧") == 5 and len("👵🏻") == 2


def test_each_note_is_coded_with_its_theme(project_tree, assignments):
    codes = {c.get("guid"): c.get("name") for c in project_tree.iterfind(".//q:CodeBook//q:Code", NS)}
    notes = assignments.set_index("note_id")
    coded = 0
    for selection in project_tree.iterfind(".//q:PlainTextSelection", NS):
        note = notes.loc[selection.get("name")]
        references = selection.findall("q:Coding/q:CodeRef", NS)
        if note["theme_id"]:
            assert [codes[r.get("targetGUID")] for r in references] == [note["theme_label"]]
            coded += 1
        else:
            assert references == []  # unassigned notes are in the text, uncoded
    assert coded == int((assignments["theme_id"] != "").sum())


def test_codes_are_themes_under_two_parents(project_tree, run_dir, seeds):
    top = project_tree.findall("q:CodeBook/q:Codes/q:Code", NS)
    assert [(c.get("name"), c.get("isCodable")) for c in top] == [("Seed themes", "false"),
                                                                  ("New candidate themes", "false")]
    themes = read_run(run_dir).themes
    seed_codes = {c.get("name"): c for c in top[0].findall("q:Code", NS)}
    new_codes = {c.get("name"): c for c in top[1].findall("q:Code", NS)}
    assert set(seed_codes) == set(themes.loc[themes["kind"] == "seed", "label"])
    assert set(new_codes) == set(themes.loc[themes["kind"] == "new", "label"])
    assert new_codes, "the fixture run finds new candidate themes"
    competence = next(s for s in seeds if s.id == "competence")
    description = seed_codes["Kompetanse"].findtext("q:Description", namespaces=NS)
    assert description.startswith(competence.description) and "Keywords in this run:" in description
    for code in new_codes.values():
        assert "Candidate theme" in code.findtext("q:Description", namespaces=NS)
    # Each theme has a note with its label; the project has a note with the run's parameters.
    notes = {n.get("guid"): n for n in project_tree.iterfind("q:Notes/q:Note", NS)}
    for code in [*seed_codes.values(), *new_codes.values()]:
        note = notes[code.find("q:NoteRef", NS).get("targetGUID")]
        assert f"Theme: {code.get('name')}" in note.findtext("q:PlainTextContent", namespaces=NS)
    run_note = notes[project_tree.find("q:NoteRef", NS).get("targetGUID")]
    parameters = run_note.findtext("q:PlainTextContent", namespaces=NS)
    assert run_note.get("name") == "Run parameters"
    assert ("seeds.random_state: 0" in parameters) or ("manifest.json was not found" in parameters)


def test_cases_are_personas_and_roles_with_typed_variables(project_tree, assignments):
    variables = {v.get("name"): v for v in project_tree.iterfind("q:Variables/q:Variable", NS)}
    assert {"site", "workshop", "participant_role", "lang"} <= set(variables)
    assert variables["date"].get("typeOfVariable") == "Date"  # the document's front matter date
    assert variables["site"].get("typeOfVariable") == "Text"
    cases = {c.get("name"): c for c in project_tree.iterfind("q:Cases/q:Case", NS)}
    assert {"Roald", "Edel", "Knut", "Elias"} <= set(cases)
    roald = {r.get("targetGUID") for r in cases["Roald"].findall("q:SelectionRef", NS)}
    linked = assignments[(assignments["persona_id"] == "roald") & (assignments["text"].str.strip() != "")]
    assert roald == {stable_guid("note", n) for n in linked["note_id"]} and "X-001" in set(linked["note_id"])
    staff = cases["participant_role: staff"]
    value = staff.find("q:VariableValue", NS)
    assert value.find("q:VariableRef", NS).get("targetGUID") == variables["participant_role"].get("guid")
    assert value.findtext("q:TextValue", namespaces=NS) == "staff"
    # The document's constant attributes are values of its source, with their types.
    document = next(s for s in project_tree.iterfind(".//q:TextSource", NS) if s.get("name") == "ledningsmote.md")
    by_guid = {v.get("guid"): v.get("name") for v in variables.values()}
    values = {by_guid[v.find("q:VariableRef", NS).get("targetGUID")]: v[1] for v in document.findall("q:VariableValue", NS)}
    assert etree.QName(values["date"]).localname == "DateValue" and values["date"].text == "2018-06-05"
    assert values["site"].text == "mariestad"


def test_export_is_byte_identical_and_has_no_local_paths(run_dir, qdpx, seeds, personas, tmp_path, project):
    again = write_qdpx(run_dir, tmp_path / "again.qdpx", seed_themes=seeds, personas=personas)
    assert again.read_bytes() == qdpx.read_bytes()
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zipfile.ZipFile(qdpx).infolist())
    with zipfile.ZipFile(qdpx) as archive:
        everything = b"".join(archive.read(name) for name in archive.namelist()).decode("utf-8")
    for local in {str(project), str(ROOT), str(Path.home()), str(tmp_path.parent)}:
        assert local not in everything
    assert "basePath" not in everything and "file://" not in everything


def test_source_text_uses_unix_line_ends_and_code_point_offsets():
    notes = pd.DataFrame({"note_id": ["a", "b", "c"], "text": ["første\r\nlinje 😊", "", "👵🏻 andre"],
                          "source_file": ["/home/someone/notes.csv"] * 3, "source_row": ["2", "3", "4"]})
    [source] = source_texts(notes)
    assert source.name == "notes.csv"  # no local path, even when the run recorded one
    assert source.text == "første\nlinje 😊\n\n👵🏻 andre"
    assert [(s.note_id, source.text[s.start:s.end]) for s in source.selections] == [
        ("a", "første\nlinje 😊"), ("c", "👵🏻 andre")]


# --------------------------------------------------------------------------- qdc


def test_qdc_validates_and_reads_back_as_seed_themes(run_dir, seeds, tmp_path):
    path = write_qdc(run_dir, tmp_path / "codebook.qdc", seed_themes=seeds)
    schema = _schema("Codebook.xsd")
    assert schema.validate(etree.parse(str(path))), schema.error_log
    read = read_qdc(path)
    themes = read_run(run_dir).themes
    assert [s.name for s in read] == themes["label"].tolist()  # parents are not codable: left out
    assert len({s.id for s in read}) == len(read) and not any(s.id.startswith("new_") for s in read)
    by_name = {s.name: s for s in read}
    original = {s.name: s for s in seeds}
    assert by_name["Kompetanse"].id == "kompetanse"
    assert by_name["Kompetanse"].description == original["Kompetanse"].description
    assert by_name["Känd personal följer med vid flytt"].id == "kand_personal_foljer_med_vid_flytt"


def test_load_seed_themes_accepts_a_codebook(run_dir, seeds, tmp_path):
    path = write_qdc(run_dir, tmp_path / "codebook.qdc", seed_themes=seeds)
    assert load_seed_themes(path) == read_qdc(path)


def test_slugify_makes_ids_from_nordic_names():
    assert slugify("Faste team rundt brukeren") == "faste_team_rundt_brukeren"
    assert slugify("Dag- og ukeplan / bilder") == "dag_og_ukeplan_bilder"
    assert slugify("Æ ø å Ä Ö") == "ae_o_a_a_o"
    assert slugify("New ideas") == "code_new_ideas"  # new_ is reserved for the run's own themes
    assert slugify("???") == "code"


# --------------------------------------------------------------------------- import


def test_round_trip_gives_back_the_notes_and_their_codings(qdpx, assignments):
    notes, codes = read_qdpx(qdpx)
    assert list(notes.columns[:len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    exported = assignments[assignments["text"].str.strip() != ""].set_index("note_id")
    assert len(notes) == len(exported) and notes["note_id"].is_unique
    by_selection = notes.set_index("selection_name")
    for note_id, note in exported.iterrows():
        back = by_selection.loc[note_id]
        assert back["note_id"] == stable_guid("note", note_id)
        assert back["text"] == plain_text(note["text"])
        assert back["gold_theme_name"] == note["theme_label"]
        assert back["gold_theme"] == (slugify(note["theme_label"]) if note["theme_id"] else "")
    assert by_selection.loc["X-008", "text"].endswith("👵🏻")
    assert by_selection.loc["X-005", "text"].startswith("=HYPERLINK")
    assert set(notes["status"]) == {"ok"} and set(notes["lang"]) <= {"nb", "nn", "sv", "da", "en"}
    # Attributes come back from the sources' values and the cases.
    assert by_selection.loc["X-004", "workshop"] == "Workshop X – 2023-05-02"  # the same for the whole file
    assert by_selection.loc["X-006", "participant_role"] == "staff"
    assert "Roald" in by_selection.loc["X-001", "cases"].split("; ")
    assert codes.loc[codes["name"] == "Kompetanse", "parent"].item() == "Seed themes"
    assert codes.loc[codes["name"] == "Seed themes", "is_codable"].item() == False  # noqa: E712


def test_imported_notes_load_and_run_through_the_pipeline(qdpx, run_dir, project, seeds, embedder, tmp_path):
    notes, _ = read_qdpx(qdpx)
    path = write_notes_csv(notes, tmp_path / "imported.csv")
    loaded = load_notes([path])
    assert len(loaded) == len(notes) and set(loaded["status"]) == {"ok"}
    assert loaded.set_index("note_id").loc[notes["note_id"], "gold_theme"].tolist() == notes["gold_theme"].tolist()
    codebook = read_qdc(write_qdc(run_dir, tmp_path / "run.qdc", seed_themes=seeds))
    config = load_config(project / "analysis.toml", paths={"personas": ""})
    blind = loaded.drop(columns=[c for c in loaded.columns if c.startswith("gold_")])
    result = pipeline.run(config, notes=blind, embedder=embedder, progress=False,
                          seed_themes_path=tmp_path / "run.qdc")
    assert [s.id for s in result.seeds] == [s.id for s in codebook]
    report = gold_agreement(loaded, result.assignments, "gold_theme", personas=False)
    # The same notes, with the run's own themes as the codebook, mostly get their themes back.
    assert report.metrics["n"] == int((notes["gold_theme"] != "").sum())
    assert report.metrics["accuracy"] > 0.35, report.metrics  # 15 codes: chance is below 0.1


def test_reads_the_nvivo_15_sample():
    notes, codes = read_qdpx(NVIVO_SAMPLE)
    with zipfile.ZipFile(NVIVO_SAMPLE) as archive:
        tree = etree.fromstring(archive.read("project.qde"))
    assert len(codes) == len(tree.findall(".//q:Code", NS)) == 262
    assert codes["id"].is_unique and codes["guid"].is_unique
    parents = dict(zip(codes["guid"], codes["name"]))
    programming = codes[codes["name"] == "programming"]
    assert sorted(parents[g] for g in programming["parent_guid"]) == ["competencies", "cs_as_programming"]
    assert set(programming["id"]) == {"programming", "cs_as_programming_programming"}
    assert codes.loc[codes["name"] == "rq1_definition", "parent"].item() == ""
    # Its two sources are empty and uncoded: they come through as empty notes.
    assert notes["source_type"].tolist() == ["document", "document"]
    assert set(notes["status"]) == {"empty"} and (notes["gold_theme"] == "").all()
    assert set(CORE_COLUMNS) <= set(notes.columns)
    seeds = read_qdc(NVIVO_SAMPLE)
    assert len(seeds) == 262 and len({s.id for s in seeds}) == 262
    assert all(s.description for s in seeds)


def _qdpx_with(tmp_path: Path, project_xml: str, sources: dict[str, str]) -> Path:
    path = tmp_path / "made.qdpx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("project.qde", project_xml)
        for name, text in sources.items():
            archive.writestr(f"sources/{name}", text.encode("utf-8"))
    return path


CODED = """<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="urn:QDA-XML:project:1.0" name="p">
 <CodeBook><Codes><Code guid="{{11111111-1111-1111-1111-111111111111}}" name="Trygghet" isCodable="true"/></Codes></CodeBook>
 <Sources><TextSource guid="22222222-2222-2222-2222-222222222222" name="intervju" plainTextPath="internal://s.txt">
  <PlainTextSelection guid="33333333-3333-3333-3333-333333333333" startPosition="{start}" endPosition="{end}">
   <Coding guid="44444444-4444-4444-4444-444444444444"><CodeRef targetGUID="11111111-1111-1111-1111-111111111111"/></Coding>
  </PlainTextSelection></TextSource></Sources></Project>"""


def test_reads_a_coded_selection_counting_code_points_of_the_stored_text(tmp_path):
    text = "Innledning\r\nJeg føler meg trygg 😊\r\nnår de samme kommer\r\nSlutt"
    wanted = "Jeg føler meg trygg 😊\r\nnår de samme kommer"
    start = text.index(wanted)  # a CR LF is two code points; the BOM is not text
    path = _qdpx_with(tmp_path, CODED.format(start=start, end=start + len(wanted)), {"s.txt": "\ufeff" + text})
    notes, codes = read_qdpx(path)
    assert notes["text"].tolist() == [wanted]
    assert notes["gold_theme"].tolist() == ["trygghet"] and notes["gold_theme_name"].tolist() == ["Trygghet"]
    assert notes["note_id"].tolist() == ["33333333-3333-3333-3333-333333333333"]
    assert codes["guid"].tolist() == ["11111111-1111-1111-1111-111111111111"]  # braces dropped
    assert notes["source_file"].tolist() == ["intervju"] and notes["lang"].tolist() == ["nb"]


def test_import_errors_name_the_file_and_say_what_to_do(tmp_path):
    not_zip = tmp_path / "notes.qdpx"
    not_zip.write_text("hello", encoding="utf-8")
    with pytest.raises(ExportError, match="notes.qdpx: not a ZIP archive"):
        read_qdpx(not_zip)
    empty = tmp_path / "empty.qdpx"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("sources/a.txt", "x")
    with pytest.raises(ExportError, match="exactly one .qde"):
        read_qdpx(empty)
    beyond = _qdpx_with(tmp_path, CODED.format(start=0, end=500), {"s.txt": "kort tekst"})
    with pytest.raises(ExportError, match="33333333-3333-3333-3333-333333333333: endPosition 500 .* outside"):
        read_qdpx(beyond)
    missing = _qdpx_with(tmp_path, CODED.format(start=0, end=1), {})
    with pytest.raises(ExportError, match="not inside the .qdpx"):
        read_qdpx(missing)


def test_missing_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="run folder not found"):
        write_qdpx(tmp_path / "nope", tmp_path / "x.qdpx")
    (tmp_path / "half").mkdir()
    with pytest.raises(ExportError, match="assignments.csv: file not found"):
        write_codebook(tmp_path / "half", tmp_path / "cb")


# --------------------------------------------------------------------------- codebook and workbook


def test_codebook_has_definitions_keywords_and_quotes(run_dir, seeds, assignments, tmp_path):
    written = write_codebook(run_dir, tmp_path / "codebook", seed_themes=seeds)
    table = read_csv(written["csv"])
    themes = read_run(run_dir).themes
    assert table["theme_id"].tolist() == themes["theme_id"].tolist()
    by_id = table.set_index("theme_id")
    assert by_id.loc["competence", "definition"] == next(s.description for s in seeds if s.id == "competence")
    for theme_id in themes.loc[themes["kind"] == "new", "theme_id"]:
        assert by_id.loc[theme_id, "definition"].startswith("Candidate theme found inductively")
    texts = assignments.set_index("note_id")["text"]
    for theme in themes.to_dict("records"):
        row = by_id.loc[theme["theme_id"]]
        representative = [n for n in theme["representative_note_ids"].split("; ") if n]
        assert [row[f"quote_{i}_note_id"] for i in (1, 2, 3) if row[f"quote_{i}_note_id"]] == representative[:3]
        for i in (1, 2, 3):
            if row[f"quote_{i}_note_id"]:
                assert row[f"quote_{i}"] == texts[row[f"quote_{i}_note_id"]]  # original language, unchanged
    markdown = written["markdown"].read_text(encoding="utf-8")
    assert markdown.count("\n## ") == len(themes)
    assert "## Kompetanse (`competence`)" in markdown and "**Definition.**" in markdown
    assert "\n# " not in markdown.split("# Codebook", 1)[1]  # note text cannot open headings


def test_workbook_is_byte_identical_whenever_it_is_written(run_dir, tmp_path, monkeypatch):
    """No clock in the file: a second export, a minute later by openpyxl's clock, is the same bytes."""
    import datetime
    import zipfile

    from openpyxl import load_workbook

    first = write_assignments_xlsx(run_dir, tmp_path / "first.xlsx").read_bytes()

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2031, 5, 17, 12, 0, tzinfo=tz)

    monkeypatch.setattr(datetime, "datetime", Later)
    second = write_assignments_xlsx(run_dir, tmp_path / "second.xlsx")
    monkeypatch.undo()
    assert second.read_bytes() == first
    with zipfile.ZipFile(second) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"dcterms:modified" not in archive.read("docProps/core.xml")
    assert load_workbook(second).sheetnames == ["assignments", "themes"]  # still opens


def test_workbook_never_holds_a_formula(run_dir, assignments, tmp_path):
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    path = write_assignments_xlsx(run_dir, tmp_path / "assignments.xlsx")
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["assignments", "themes"]
    sheet = workbook["assignments"]
    header = [cell.value for cell in sheet[1]]
    assert header == assignments.columns.tolist()
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2"
    text_letter = get_column_letter(header.index("text") + 1)
    assert sheet.column_dimensions[text_letter].width == 80 and sheet.column_dimensions["A"].width < 40
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    text_column = header.index("text")
    hyperlink = rows["X-005"][text_column]
    assert hyperlink.value == assignments.set_index("note_id").loc["X-005", "text"]
    assert hyperlink.value.startswith('=HYPERLINK("http://x")') and hyperlink.data_type == "s"
    assert rows["X-006"][text_column].value.startswith("+47") and rows["X-008"][text_column].value.startswith("@")
    assert isinstance(rows["X-001"][header.index("theme_score")].value, float)
    assert isinstance(rows["X-001"][header.index("source_row")].value, int)
    with zipfile.ZipFile(path) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")
    assert [c.value for c in workbook["themes"][1]][:3] == ["theme_id", "label", "kind"]


# --------------------------------------------------------------------------- command line


def test_cli_exports_a_run_and_imports_it_back(run_dir, project, qdpx, tmp_path):
    from typer.testing import CliRunner

    from analysis.cli import app

    runner = CliRunner()
    config = ["--config", str(project / "analysis.toml"), "--from", str(run_dir)]
    result = runner.invoke(app, ["export", "qdpx", "--out", str(tmp_path / "cli.qdpx"), *config])
    assert result.exit_code == 0, result.output
    # Seed descriptions and personas come from the config, as in the library call.
    assert (tmp_path / "cli.qdpx").read_bytes() == qdpx.read_bytes()
    for command, target in [("qdc", "cli.qdc"), ("codebook", "codebook"), ("xlsx", "cli.xlsx")]:
        result = runner.invoke(app, ["export", command, "--out", str(tmp_path / target), *config])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "codebook" / "codebook.md").is_file() and (tmp_path / "cli.xlsx").is_file()
    assert read_qdc(tmp_path / "cli.qdc")[0].id == "kompetanse"
    result = runner.invoke(app, ["import", "qdpx", str(tmp_path / "cli.qdpx"), "--out", str(tmp_path / "notes.csv")])
    assert result.exit_code == 0, result.output
    assert "coded" in result.output and "=HYPERLINK" not in result.output  # no note text printed
    loaded = load_notes([tmp_path / "notes.csv"])
    assert "X-005" in set(loaded["selection_name"]) and "gold_theme" in loaded.columns


def test_cli_user_errors_exit_2_with_a_message(project, tmp_path):
    from typer.testing import CliRunner

    from analysis.cli import app

    runner = CliRunner()
    # --from defaults to the config's [paths] out, where nothing has run yet.
    result = runner.invoke(app, ["export", "xlsx", "--out", str(tmp_path / "a.xlsx"),
                                 "--config", str(project / "analysis.toml")])
    assert result.exit_code == 2 and "run folder not found" in result.output
    assert str(project / "data" / "processed") in result.output
    result = runner.invoke(app, ["import", "qdpx", str(tmp_path / "nope.qdpx"), "--out", str(tmp_path / "n.csv")])
    assert result.exit_code == 2 and "nope.qdpx: file not found" in result.output
    assert "Traceback" not in result.output


def test_markdown_text_shows_note_text_as_written():
    from analysis.export.codebook import markdown_text

    assert markdown_text("# not a heading") == "\\# not a heading"
    assert markdown_text("- not a list\n1. nor this") == "\\- not a list\n1\\. nor this"
    assert markdown_text("<script>[x](y) *a* `b`") == "\\<script\\>\\[x\\](y) \\*a\\* \\`b\\`"
    assert markdown_text("Känd personal 😊") == "Känd personal 😊"


def test_the_report_shows_tricky_notes_exactly_as_written(run_dir, tmp_path):
    """The report reads the run through the one RunFolder, so the spreadsheet guard is undone:
    a note starting with -, =, + or @ is quoted as written, never as '-…."""
    from analysis.export.html import esc
    from analysis.export.report import write_report
    from analysis.files import write_csv

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    tricky = ["X-005", "X-006", "X-007", "X-008", "X-009"]
    run = read_run(folder)
    themes = run.themes.copy()
    # Quote the tricky notes: the first two themes take them as their representative notes.
    themes.loc[themes.index[0], "representative_note_ids"] = "; ".join(tricky[:3])
    themes.loc[themes.index[1], "representative_note_ids"] = "; ".join(tricky[3:])
    write_csv(themes, folder / "themes.csv")
    page = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    texts = run.assignments.set_index("note_id").loc[tricky, "text"]
    assert texts["X-007"].startswith("-minus") and texts["X-009"].startswith("'=apostrof")
    for note_id, text in texts.items():
        assert f"<p>{esc(text)}</p>" in page, note_id
        assert f"<p>{esc(chr(39) + text)}</p>" not in page, note_id
