"""Loading notes tables and documents into the notes frame."""

from __future__ import annotations

import csv
import io
import logging
import random
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.load import LoadError, derived_note_id, load_notes, normalise_language
from analysis.schema import CORE_COLUMNS, LANGUAGES

FIXTURES = Path(__file__).parent / "fixtures"


def load(*names: str) -> pd.DataFrame:
    return load_notes([FIXTURES / name for name in names], root=FIXTURES)


def row(frame: pd.DataFrame, note_id: str) -> pd.Series:
    [index] = frame.index[frame["note_id"] == note_id]
    return frame.loc[index]


@pytest.fixture(scope="module")
def notes() -> pd.DataFrame:
    return load("notes")


# --------------------------------------------------------------------------- the frame


def test_core_columns_come_first_then_input_columns(notes):
    assert tuple(notes.columns[:len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert {"persona", "workshop", "gold_theme", "table", "sheet", "section", "site"} <= set(notes.columns)
    assert "Workshop" not in notes.columns and " lang " not in notes.columns


def test_every_row_has_a_status_and_a_language(notes):
    assert set(notes["status"]) <= {"ok", "empty"}
    assert set(notes["lang"]) <= {*LANGUAGES, "und"}
    assert notes["note_id"].is_unique


def test_rows_are_sorted_by_note_id(notes):
    ids = list(notes["note_id"])
    assert ids.index("C-01") < ids.index("C-08") < ids.index("S-1")


def test_folders_skip_readme_yaml_and_non_documents_in_docs(notes):
    assert set(notes["source_file"]) == {
        "notes/notes_comma.csv", "notes/notes_semicolon_bom.csv", "notes/notes_cp1252.csv",
        "notes/notes_two_sheets.xlsx", "notes/docs/interview.md"}
    assert set(notes.attrs["skipped_files"]) == {
        "notes/README.md", "notes/config.yml", "notes/docs/attendance.csv"}


def test_source_file_is_the_name_without_a_root():
    frame = load_notes([FIXTURES / "notes" / "notes_comma.csv"])
    assert set(frame["source_file"]) == {"notes_comma.csv"}


# --------------------------------------------------------------------------- CSV


def test_comma_csv(notes):
    assert notes.attrs["delimiters"]["notes/notes_comma.csv"] == ","
    assert notes.attrs["encodings"]["notes/notes_comma.csv"] == "utf-8"
    note = row(notes, "C-05")
    assert note["text"] == "Kompetanse på demens hos alle ansatte,\nogså helgevikarer"
    assert (note["source_row"], note["char_start"], note["char_end"]) == (6, -1, -1)
    assert (note["source_type"], note["doc_id"]) == ("note", "")
    assert row(notes, "C-06")["text"] == 'Han sa "hei" og gikk'
    assert row(notes, "C-01")["persona"] == "roald"


def test_lang_column_values_are_normalised(notes):
    assert [row(notes, i)["lang"] for i in ("C-01", "C-02", "C-03", "C-04", "C-06")] == [
        "nb", "nn", "sv", "en", "nb"]
    assert row(notes, "C-02")["lang_source"] == "column"


def test_blank_lang_is_detected(notes):
    assert (row(notes, "C-05")["lang"], row(notes, "C-05")["lang_source"]) == ("nb", "detected")


def test_undetectable_note_takes_the_file_majority(notes):
    note = row(notes, "S-4")
    assert (note["text"], note["lang"], note["lang_source"]) == ("!!! 123", "nb", "file_majority")


def test_whitespace_text_is_an_empty_note(notes):
    note = row(notes, "C-07")
    assert (note["status"], note["status_reason"], note["text"]) == ("empty", "text is empty", "   ")


def test_semicolon_csv_with_bom_and_crlf(notes):
    assert notes.attrs["encodings"]["notes/notes_semicolon_bom.csv"] == "utf-8-sig"
    assert notes.attrs["delimiters"]["notes/notes_semicolon_bom.csv"] == ";"
    assert row(notes, "S-1")["text"] == "Faste team rundt Roald"
    assert row(notes, "S-2")["text"] == "Tekst med ; semikolon og\nlinjeskift i cellen"
    assert row(notes, "S-2")["gold_theme"] == "other"


def test_cp1252_csv_with_derived_ids(notes):
    assert notes.attrs["encodings"]["notes/notes_cp1252.csv"] == "cp1252"
    cp1252 = notes[notes["source_file"] == "notes/notes_cp1252.csv"].set_index("source_row")
    assert cp1252.loc[3, "text"] == "Ærlig talt, økonomien styrer alt"
    assert cp1252.loc[5, "text"] == "Även svenska – “citat” kostar 5 €"
    assert cp1252.loc[5, "table"] == "Bord 3"
    assert cp1252.loc[5, "note_id"] == derived_note_id("Även svenska – “citat” kostar 5 €")


def test_latin1_when_not_cp1252(tmp_path):
    (tmp_path / "old.csv").write_bytes("text\nSkjønt \x81\n".encode("latin-1"))
    frame = load_notes([tmp_path / "old.csv"])
    assert frame.attrs["encodings"] == {"old.csv": "latin-1"}
    assert frame["text"].tolist() == ["Skjønt \x81"]


def test_tab_separated(tmp_path):
    (tmp_path / "notes.tsv").write_text("note_id\ttext\nT-1\tFaste folk, hver dag\n", encoding="utf-8")
    frame = load_notes([tmp_path])
    assert frame.attrs["delimiters"] == {"notes.tsv": "\t"}
    assert frame["text"].tolist() == ["Faste folk, hver dag"]


# --------------------------------------------------------------------------- XLSX


def test_xlsx_reads_only_sheets_with_a_text_column(notes):
    sheet = notes[notes["source_file"] == "notes/notes_two_sheets.xlsx"].sort_values("source_row")
    assert sheet["text"].tolist() == ["Faste folk rundt Roald", "Demensteam i helgene",
                                      "Digital tavle hjemme hos bruker"]
    assert set(sheet["sheet"]) == {"Lapper"}
    assert sheet["source_row"].tolist() == [2, 4, 5]
    assert sheet["tidspunkt"].tolist() == ["2023-03-01", "7", "3.5"]
    assert notes.attrs["skipped_blank_rows"]["notes/notes_two_sheets.xlsx"] == 1


def test_xlsx_without_a_text_sheet_names_sheets_and_columns():
    with pytest.raises(LoadError) as error:
        load("bad/no_text_sheet.xlsx")
    message = str(error.value)
    assert message.startswith("bad/no_text_sheet.xlsx: no sheet has a 'text' column")
    assert "'Ark1': id, merknad" in message and "'Ark2': tidspunkt" in message


# --------------------------------------------------------------------------- documents


@pytest.fixture(scope="module")
def document() -> tuple[pd.DataFrame, str]:
    path = FIXTURES / "notes" / "docs" / "interview.md"
    return load_notes([path]), path.read_bytes().decode("utf-8")


def test_document_spans_are_exact(document):
    units, file_text = document
    assert "\r\n" in file_text
    for unit in units.itertuples():
        assert file_text[unit.char_start:unit.char_end] == unit.text
        assert unit.text == unit.text.strip()


def test_document_units_and_front_matter(document):
    units, _ = document
    assert units["note_id"].tolist()[:2] == ["FIX-DOC-u001", "FIX-DOC-u002"]
    assert units["source_row"].tolist() == list(range(1, len(units) + 1))
    assert set(units["doc_id"]) == {"FIX-DOC"} and set(units["source_type"]) == {"interview"}
    assert set(units["lang_source"]) == {"front_matter"} and set(units["lang"]) == {"nb"}
    first = units.iloc[0]
    assert (first["site"], first["date"], first["tags"]) == ("testby", "2024-05-02", "turnus;helg")


def test_document_list_items_exclude_their_markers(document):
    units, _ = document
    assert units["text"].tolist()[1:5] == [
        "Første punkt med æøå", "Andre punkt 🙏\r\n  fortsetter på neste linje", "Stjernepunkt",
        "Nummerert punkt"]


def test_document_headings_are_sections_not_units(document):
    units, _ = document
    assert not units["text"].str.startswith("#").any()
    assert units["section"].iloc[0] == "Intervju med pårørende"
    assert units["section"].iloc[1] == "Observasjoner"
    assert units["section"].iloc[-1] == "Tittel med understrek"
    assert "Tittel med understrek" not in units["text"].tolist()


def test_long_paragraph_is_split_into_sentences(document):
    units, _ = document
    sentences = units[units["text"].str.contains("kantina|årsverk|kontaktperson|nr. 2|enige")]
    assert len(sentences) == 5
    assert sentences["text"].iloc[0].endswith("f.eks. helgene.")
    assert (units["text"].str.len() <= 400).all()


def test_document_without_front_matter(tmp_path):
    (tmp_path / "notat.txt").write_text("Første avsnitt.\n\nAndre avsnitt.\n", encoding="utf-8")
    units = load_notes([tmp_path])
    assert units["note_id"].tolist() == ["notat-u001", "notat-u002"]
    assert set(units["source_type"]) == {"document"} and set(units["doc_id"]) == {"notat"}
    assert set(units["lang_source"]) <= {"detected", "file_majority"}


# --------------------------------------------------------------------------- unusable files


@pytest.mark.parametrize(("name", "start"), [
    ("bad/empty.csv", "bad/empty.csv: the file is empty."),
    ("bad/binary.csv", "bad/binary.csv: looks like a binary file, not a CSV."),
    ("bad/no_text_column.csv", "bad/no_text_column.csv, row 1: has no 'text' column (columns found: id, merknad)."),
])
def test_unusable_files_raise_a_load_error_naming_the_file(name, start):
    with pytest.raises(LoadError) as error:
        load(name)
    assert str(error.value).startswith(start)
    assert str(error.value).endswith(".")


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        load_notes([tmp_path / "missing.csv"])
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(LoadError, match="not a notes file"):
        load_notes([tmp_path / "notes.pdf"])
    with pytest.raises(LoadError, match="no notes files found"):
        load_notes([tmp_path])


def test_unclosed_quote_is_an_error_not_a_merged_note(tmp_path):
    (tmp_path / "broken.csv").write_text('note_id,text\n1,"open quote\n2,next\n', encoding="utf-8")
    with pytest.raises(LoadError, match=r"broken.csv, row 2: the CSV cannot be parsed"):
        load_notes([tmp_path / "broken.csv"])


# --------------------------------------------------------------------------- odd but usable


def test_header_only_gives_no_notes_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="analysis.load"):
        frame = load("edge/header_only.csv")
    assert frame.empty and tuple(frame.columns[:len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert "header only" in caplog.text


def test_duplicate_ids_keep_both_rows():
    frame = load("edge/duplicate_ids.csv")
    assert frame["note_id"].tolist() == ["D-1", "D-1~r4", "D-2"]
    assert frame["flags"].tolist() == ["", "duplicate_id", ""]
    assert row(frame, "D-1~r4")["text"] == "Samme id igjen"


def test_duplicate_ids_across_files_are_made_unique(tmp_path):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("note_id,text\nX,hei\n", encoding="utf-8")
    frame = load_notes([tmp_path])
    assert frame["note_id"].tolist() == ["X", "X~r2"]
    assert frame["source_file"].tolist() == ["a.csv", "b.csv"]


def test_blank_rows_are_counted_not_loaded():
    frame = load("edge/blank_rows.csv")
    assert frame["note_id"].tolist() == ["B-1", "B-2"]
    assert frame["source_row"].tolist() == [3, 6]
    assert frame["status"].tolist() == ["ok", "empty"]
    assert frame.attrs["skipped_blank_rows"] == {"edge/blank_rows.csv": 3}


def test_findings_are_flagged_not_hidden(tmp_path):
    long_note = "ord " * 1300
    (tmp_path / "notes.csv").write_text(
        f"note_id,text,lang\n1,{long_note},nb\n2,Faste folk,klingon\n,Uten id,nb\n4,hei,nb,extra\n",
        encoding="utf-8")
    frame = load_notes([tmp_path / "notes.csv"])
    flags = dict(zip(frame["text"].str[:10], frame["flags"]))
    assert flags[long_note[:10]] == "long_text"
    assert flags["Faste folk"] == "unknown_lang"
    assert flags["Uten id"] == "derived_id"
    assert flags["hei"] == "extra_cells" and row(frame, "4")["extra_cells"] == "extra"
    assert row(frame, derived_note_id("Uten id"))["text"] == "Uten id"


def test_the_same_text_in_two_files_gets_distinct_ids(tmp_path):
    for site in ("baerum", "mariestad"):
        (tmp_path / site).mkdir()
        (tmp_path / site / "notes.csv").write_text("text\nhei\n", encoding="utf-8")
    frame = load_notes([tmp_path])
    assert frame["note_id"].tolist() == [derived_note_id("hei"), derived_note_id("hei", 2)]
    assert frame["flags"].tolist() == ["", ""]


def test_derived_ids_survive_renaming_moving_and_reordering_the_file(tmp_path):
    rows = ["Faste team rundt brukeren", "Bilder av de ansatte", "  Faste team\r\nrundt   brukeren "]
    first = tmp_path / "workshop_bibliotek.csv"
    first.write_text("text,gruppe\n" + "".join(f'"{r}",A\n' for r in rows), encoding="utf-8")
    moved = tmp_path / "elsewhere" / "fixed_file.csv"
    moved.parent.mkdir()
    moved.write_text("gruppe;text\r\n" + "".join(f'A;"{r}"\r\n' for r in reversed(rows[:2])), encoding="utf-8")
    before = dict(zip(load_notes([first])["text"], load_notes([first])["note_id"]))
    after = dict(zip(load_notes([moved])["text"], load_notes([moved])["note_id"]))
    assert before[rows[0]] == after[rows[0]] and before[rows[1]] == after[rows[1]]
    assert all(note_id.startswith("note-") and "bibliotek" not in note_id for note_id in before.values())
    # Whitespace and line ends do not make a new text; the repeat gets its occurrence number.
    assert before[rows[2]] == before[rows[0]] + "-2"


@pytest.mark.parametrize(("value", "code"), [
    ("nob", "nb"), ("NO", "nb"), ("Bokmål", "nb"), ("nno", "nn"), ("Nynorsk", "nn"),
    ("swe", "sv"), ("svenska", "sv"), ("sv-SE", "sv"), ("dan", "da"), ("eng", "en"),
    ("English", "en"), ("tlh", None), ("", None),
])
def test_normalise_language(value, code):
    assert normalise_language(value) == code


# --------------------------------------------------------------------------- determinism


def test_shuffled_rows_give_the_same_frame(tmp_path):
    source = FIXTURES / "notes" / "notes_comma.csv"
    header, *rows = list(csv.reader(io.StringIO(source.read_text(encoding="utf-8"), newline="")))
    random.Random(7).shuffle(rows)
    shuffled = tmp_path / source.name
    with shuffled.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    original = load_notes([source]).drop(columns="source_row")
    pd.testing.assert_frame_equal(load_notes([shuffled]).drop(columns="source_row"), original)


def test_loading_twice_gives_the_same_frame(notes):
    pd.testing.assert_frame_equal(load("notes"), notes)


# --------------------------------------------------------------------------- properties

def excel_csv(rows: list[list[str]], delimiter: str, line_end: str) -> str:
    """CSV as Excel writes it: a cell is quoted when it holds the delimiter, a quote or a line
    break. (Python's csv writer before 3.12 leaves a lone CR unquoted.)"""
    def cell(value: str) -> str:
        if any(char in value for char in (delimiter, '"', "\r", "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value
    return "".join(delimiter.join(map(cell, cells)) + line_end for cells in rows)


NOTE_TEXT = st.text(
    alphabet=st.sampled_from(list("aæøåäöéZ 0,;\t\n\r\"'") + ["🙏", "😀"]), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.tuples(NOTE_TEXT, st.booleans()), max_size=12),
       delimiter=st.sampled_from([",", ";"]), line_end=st.sampled_from(["\n", "\r\n"]))
def test_every_non_blank_csv_row_comes_back_with_its_exact_text(texts, delimiter, line_end):
    rows = [[f"n{i}" if has_id else "", text] for i, (text, has_id) in enumerate(texts)]
    expected = [text for (text, _), cells in zip(texts, rows) if any(c.strip() for c in cells)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notes.csv"
        path.write_bytes(excel_csv([["note_id", "text"], *rows], delimiter, line_end).encode("utf-8"))
        frame = load_notes([path])
    assert len(frame) == len(expected)
    assert sorted(frame["text"]) == sorted(expected)
    assert set(frame["status"]) <= {"ok", "empty"}
    assert (frame["status"] == "empty").sum() == sum(not text.strip() for text in expected)


LINE = st.lists(st.sampled_from(list("abcæøå ÄÖ.!?,-*#12") + ["😀", "🙏", "f.eks. ", "kl. "]),
                min_size=1, max_size=60).map(lambda pieces: "x" + "".join(pieces))
BLOCK = st.one_of(
    LINE.map(lambda line: "# " + line),
    LINE.map(lambda line: "- " + line),
    LINE.map(lambda line: "1. " + line),
    st.tuples(LINE, LINE).map(lambda lines: f"- {lines[0]}\n  * {lines[1]}"),  # nested item
    LINE.map(lambda line: line + "\n-----"),  # setext heading
    st.lists(LINE, min_size=1, max_size=4).map("\n".join),
    st.lists(LINE, min_size=8, max_size=12).map(" ".join),  # long enough to be split
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(BLOCK, max_size=8), front_matter=st.booleans(),
       line_end=st.sampled_from(["\n", "\r\n"]), gap=st.sampled_from(["\n", "\n\n", "\n \n"]))
def test_every_document_unit_span_is_exact(blocks, front_matter, line_end, gap):
    body = gap.join(blocks)
    document = ("---\ndoc_id: D\nlang: nb\n---\n" if front_matter else "") + body
    file_text = document.replace("\n", line_end)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "doc.md"
        path.write_bytes(file_text.encode("utf-8"))
        if not body.strip():
            return
        units = load_notes([path])
    for unit in units.itertuples():
        assert file_text[unit.char_start:unit.char_end] == unit.text
        assert unit.text and unit.text == unit.text.strip()
    assert units["source_row"].tolist() == list(range(1, len(units) + 1))


def test_fixture_folder_is_copied_intact(tmp_path):
    # The loader only reads: a copy of the fixtures loads to the same notes.
    shutil.copytree(FIXTURES / "notes", tmp_path / "notes")
    copied = load_notes([tmp_path / "notes"], root=tmp_path)
    assert copied["text"].tolist() == load("notes")["text"].tolist()


def test_column_roles_are_mapped_or_recognised_by_name(tmp_path):
    path = tmp_path / "eksport.csv"
    path.write_bytes("\ufeffNr;Beskjed;Verksted;Språk\r\n7;Faste folk;WS 1;nb\r\n;;;\r\n8;Bilder av de ansatte;WS 2;\r\n"
                     .encode("utf-8"))
    frame = load_notes([path], columns={"text": "beskjed", "workshop": "Verksted"})
    assert frame.set_index("note_id").loc["7", ["text", "workshop", "lang"]].tolist() == ["Faste folk", "WS 1", "nb"]
    assert frame.attrs["columns"]["eksport.csv"] == {"note_id": "Nr", "text": "Beskjed", "workshop": "Verksted",
                                                     "lang": "Språk"}
    assert frame.attrs["skipped_blank_rows"]["eksport.csv"] == 1
    recognised = tmp_path / "lapper.csv"
    recognised.write_text("Gruppe,Post-it\nA,Kveldsåpent\n", encoding="utf-8")
    assert load_notes([recognised])["text"].tolist() == ["Kveldsåpent"]


@pytest.mark.parametrize("content, columns, expected", [
    ("Notat,Tekst\na,b\n", None, "several columns that could hold the notes ('notat', 'tekst')"),
    ("Beskjed,Gruppe\na,b\n", {"text": "Beskjd"}, "has no column 'Beskjd'"),
    ("Tekst,Gruppe\na,b\n", {"workshop": "Grupe"}, "no notes table has the column 'Grupe'"),
])
def test_column_mapping_mistakes_are_named_with_a_suggestion(tmp_path, content, columns, expected):
    path = tmp_path / "notes.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LoadError) as error:
        load_notes([path], columns=columns)
    assert expected in str(error.value)
    if columns:
        assert "did you mean" in str(error.value)


@pytest.mark.parametrize("header", ["source_type", "type", "kind", "note_type", "Source"])
def test_a_notes_tables_own_note_type_column_is_the_source_type(tmp_path, header):
    path = tmp_path / "notes.csv"
    path.write_text(f"text,{header}\nFaste folk rundt bruker,workshop_idea\nHun sier hun vil ha ukeplan,interview_note\n"
                    "Ingen type her,\n", encoding="utf-8")
    notes = load_notes([path], root=tmp_path).sort_values("source_row")
    assert notes["source_type"].tolist() == ["workshop_idea", "interview_note", "note"]
    assert not [c for c in notes.columns if c.startswith("input_")]
