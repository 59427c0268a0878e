"""Bad inputs, end to end through the CLI, and the "nothing lost" invariant as property tests.

Every case in tests/fixtures/bad/ (README.md there lists them) ends in one of two ways:
- a user error: exit code 2 and one message naming the file (and the row or line where
  that applies) and what to do, never a traceback;
- a finished run in which the affected notes carry an explicit status, reason or flag in
  assignments.csv.

The CLI cases use the TF-IDF backend (the embeddings do not matter for them, and it needs no
model); the property tests use the real offline e5 model through an embedding cache.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import shutil
import tempfile
import tomllib
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analysis import outputs, pipeline
from analysis.cli import app
from analysis.config import PathsConfig, load_config
from analysis.embed.cache import CachedEmbedder
from analysis.load import LoadError, derived_note_id

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "fixtures" / "bad"
PERSONAS = ROOT / "data" / "raw" / "personas.yml"
SEEDS = ROOT / "data" / "raw" / "seed_themes.yml"

STATUSES = {"assigned", "new_theme", "unassigned", "empty", "excluded", "pinned"}
THEMED = frozenset({"assigned", "new_theme", "unassigned"})  # "some theme decision", for text notes
SOME_NOTES = [  # as in tests/fixtures/make_fixtures.py
    "Faste team rundt hver bruker, samme folk hver uke",
    "Mer opplæring i demens for alle ansatte",
    "Ukeplan med bilder av de som kommer",
    "Personal följer med vid flytt till nytt boende",
]
HIDDEN_SHEET_ID = derived_note_id("Gammel lapp fra i fjor om faste team")

runner = CliRunner()


# --------------------------------------------------------------------------- a throwaway project


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def write_config(folder: Path, **sections: dict) -> Path:
    """analysis.toml with some keys replaced, written to ``folder``."""
    config = tomllib.loads((ROOT / "analysis.toml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    text = "".join(f"[{section}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
                   for section, values in config.items())
    path = folder / "analysis.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    """The committed config with the TF-IDF backend, the example personas and seed codebook, no
    overrides file, and its cache in a temporary folder."""
    folder = tmp_path_factory.mktemp("bad_input_project")
    paths = {"notes": ["notes"], "personas": PERSONAS.as_posix(), "seed_themes": SEEDS.as_posix(),
             "out": "out", "cache": "cache"}
    if "overrides" in {f.name for f in dataclasses.fields(PathsConfig)}:
        paths["overrides"] = ""
    return write_config(folder, paths=paths, embedding={"backend": "tfidf"})


def run_cli(config_path: Path, out: Path, *args) -> object:
    # --notes from elsewhere do not get the config's codebook and personas (pipeline.reference_files):
    # these tests want both, so they name them, as a user would.
    named = {str(a) for a in args}
    if "--notes" in named and "--config" not in named:
        args = (*args, *(("--seed-themes", SEEDS) if not named & {"--seed-themes", "--no-seed-themes"} else ()),
                *(("--personas", PERSONAS) if "--personas" not in named else ()))
    if "--config" not in args:
        args = ("--config", config_path, *args)
    return runner.invoke(app, ["run", "--out", str(out), *map(str, args)])


def error_message(result) -> str:
    """The one 'error:' line, after checking the run ended as a user error."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def read_assignments(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)


def assert_nothing_lost(assignments: pd.DataFrame, n_notes: int) -> None:
    assert len(assignments) == n_notes
    assert assignments["note_id"].is_unique
    assert (assignments["status"].str.strip() != "").all()
    assert set(assignments["status"]) <= STATUSES
    assert assignments["status"].value_counts().sum() == n_notes


# --------------------------------------------------------------------------- user errors

USER_ERRORS = [
    # Files
    pytest.param(["--notes", BAD / "empty.csv"], ["empty.csv", "the file is empty", "Export the notes again"],
                 id="empty file"),
    pytest.param(["--notes", BAD / "header_only.csv"],
                 ["header_only.csv", "no notes to analyse", "Add notes below the header row"], id="header only"),
    pytest.param(["--notes", BAD / "no_text_column.csv"],
                 ["no_text_column.csv", "row 1", "no 'text' column", "columns found: id, merknad",
                  "Name the column that holds the notes 'text'"], id="no text column"),
    pytest.param(["--notes", BAD / "pipe_delimited.csv"],
                 ["pipe_delimited.csv", "row 1", "no 'text' column", "separated by '|'",
                  "save the file again with commas, semicolons or tabs"], id="unknown delimiter"),
    pytest.param(["--notes", BAD / "headerless.csv"],
                 ["headerless.csv", "row 1", "<49 characters>", "add a header row"], id="no header row"),
    pytest.param(["--notes", BAD / "binary.csv"],
                 ["binary.csv", "looks like a binary file, not a CSV", "Save it again as UTF-8 text"],
                 id="binary named csv"),
    pytest.param(["--notes", BAD / "workbook_named.csv"],
                 ["workbook_named.csv", "zip file (an Excel workbook?)", "rename it to end in .xlsx"],
                 id="workbook named csv"),
    pytest.param(["--notes", BAD / "text_named.xlsx"],
                 ["text_named.xlsx", "not a readable Excel workbook", "save it again as .xlsx"],
                 id="text named xlsx"),
    pytest.param(["--notes", BAD / "no_text_sheet.xlsx"],
                 ["no_text_sheet.xlsx", "no sheet has a 'text' column", "'Ark1': id, merknad", "'Ark2': tidspunkt",
                  "Name the column with the notes 'text'"], id="xlsx without a text sheet"),
    pytest.param(["--notes", BAD / "no_notes"],
                 ["no_notes", "no notes files found", "workshop.pdf: not a notes file",
                  "Give folders or files ending in .csv"], id="folder without notes files"),
    pytest.param(["--notes", BAD / "missing.csv"], ["missing.csv", "does not exist", "Check the input paths"],
                 id="notes path missing"),
    # Rows and fields
    pytest.param(["--notes", BAD / "unclosed_quote.csv"],
                 ["unclosed_quote.csv", "row 3", "cannot be parsed", "Check that quotes around cells are closed"],
                 id="unclosed quote"),
    pytest.param(["--notes", BAD / "broken_front_matter.md"],
                 ["broken_front_matter.md", "front matter is not valid YAML at line 2, column 9",
                  "Fix the block between the '---' lines"], id="broken front matter"),
    # Config and reference files
    pytest.param(["--config", BAD / "broken_config.toml"],
                 ["broken_config.toml", "not valid TOML", "line 3", "Fix the line it names"], id="broken toml"),
    pytest.param(["--config", BAD / "unknown_key.toml"],
                 ["unknown_key.toml", "[themes]", "unknown key(s) ['n_theme']", "known keys are"],
                 id="config unknown key"),
    pytest.param(["--config", BAD / "missing.toml"], ["missing.toml", "config file not found", "Pass --config"],
                 id="config missing"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--personas", BAD / "broken_personas.yml"],
                 ["broken_personas.yml", "line 4, column 14: not valid YAML", "Fix the indentation or quoting"],
                 id="broken personas yaml"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--personas", BAD / "personas_missing_name.yml"],
                 ["personas_missing_name.yml", "line 4", "persona 2 ('edel')", "key 'name' is missing",
                  "Add 'name: ...' to this persona"], id="persona without name"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--personas", BAD / "missing.yml"],
                 ["missing.yml", "personas file not found"], id="personas missing"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--seed-themes", BAD / "broken_seed_themes.yml"],
                 ["broken_seed_themes.yml", "line 3, column 11", "not valid YAML", "a quote opened here is never closed", "Fix the indentation or quoting"],
                 id="broken seed yaml"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--seed-themes", BAD / "seed_no_description.yml"],
                 ["seed_no_description.yml", "line 5", "theme 2 (fixed_team)", "key 'description'",
                  "Give every theme a non-empty description"], id="seed theme without description"),
    pytest.param(["--notes", BAD / "utf8_bom.csv", "--seed-themes", BAD / "missing.yml"],
                 ["missing.yml", "seed-theme file not found", "Check --seed-themes"], id="seed themes missing"),
]


@pytest.mark.parametrize(("args", "says"), USER_ERRORS)
def test_user_error_is_one_clear_message_and_exit_code_2(config_path, tmp_path, args, says):
    message = error_message(run_cli(config_path, tmp_path / "out", *args))
    for fragment in says:
        assert fragment in message, message
    assert message.endswith(".")
    assert not (tmp_path / "out" / "assignments.csv").exists()


def test_error_messages_do_not_repeat_note_text(config_path, tmp_path):
    # headerless.csv's first row is a note; the message must not print it (privacy).
    message = error_message(run_cli(config_path, tmp_path / "out", "--notes", BAD / "headerless.csv"))
    assert SOME_NOTES[0].lower() not in message.lower()


# --------------------------------------------------------------------------- explicit statuses

# (notes arguments, number of notes, expected fields of some notes in assignments.csv)
STATUS_CASES = [
    pytest.param([BAD / "cp1252.csv"], 6, {
        "W-1": {"text": "Även svenska – “citat” kostar 5 €", "status": THEMED},
        "W-2": {"text": "Ærlig talt, økonomien styrer alt"}}, id="cp1252"),
    pytest.param([BAD / "latin1.csv"], 5, {
        "L-1": {"text": "Skjønt, sa hun: «Blåbær på møtene!»", "status": THEMED}}, id="latin-1"),
    pytest.param([BAD / "utf8_bom.csv"], 4, {
        "B-1": {"text": SOME_NOTES[0], "flags": ""}, "B-4": {"text": SOME_NOTES[3]}}, id="utf-8 BOM"),
    pytest.param([BAD / "utf16.csv"], 4, {
        "U-1": {"text": SOME_NOTES[0]}, "U-4": {"text": SOME_NOTES[3]}}, id="utf-16 BOM"),
    pytest.param([BAD / "duplicate_ids.csv"], 4, {
        "D-1": {"text": SOME_NOTES[0], "flags": ""},
        "D-1~r4": {"text": SOME_NOTES[2], "flags": "duplicate_id", "source_row": "4", "status": THEMED}},
                 id="duplicate note_id"),
    pytest.param([BAD / "blank_rows.csv"], 4, {
        "K-1": {"source_row": "3", "status": THEMED},
        "K-2": {"status": "empty", "status_reason": "text is empty", "theme_id": ""},
        "K-4": {"source_row": "8"}}, id="blank rows"),
    pytest.param([BAD / "quoted_newlines.csv"], 6, {
        "Q-1": {"text": "Første linje\nandre linje, med komma"},
        "Q-2": {"text": 'Han sa "hei" og gikk'}}, id="quoted newlines"),
    pytest.param([BAD / "odd_fields.csv"], 4, {
        "O-1": {"flags": "unknown_lang"},
        derived_note_id(SOME_NOTES[1]): {"flags": "derived_id", "text": SOME_NOTES[1]},
        "O-3": {"flags": "extra_cells", "extra_cells": "ekstra celle"}}, id="odd fields"),
    pytest.param([BAD / "several_sheets.xlsx"], 5, {
        "S-1": {"sheet": "Workshop 1", "flags": ""},
        derived_note_id(SOME_NOTES[3]): {"sheet": "Workshop 2", "text": SOME_NOTES[3]},
        HIDDEN_SHEET_ID: {"sheet": "Gammel", "flags": "hidden_sheet", "status": THEMED}},
                 id="xlsx several, hidden and empty sheets"),
    pytest.param([BAD / "unknown_persona_tag.csv"], 4, {
        "T-1": {"persona_id": "roald", "persona_method": "tag"},
        "T-2": {"persona_id": "none", "persona_method": "tag_unknown", "persona": "Rolf", "status": THEMED},
        "T-3": {"persona_id": "none", "persona_method": "tag"}}, id="unknown persona tag"),
    pytest.param([BAD / "all_empty.csv"], 3, {
        "E-1": {"status": "empty", "status_reason": "text is empty", "persona_id": "none"},
        "E-3": {"status": "empty", "text": "\n"}}, id="every note empty"),
    pytest.param([BAD / "header_only.csv", BAD / "utf8_bom.csv"], 4, {"B-2": {"text": SOME_NOTES[1]}},
                 id="header-only file next to notes"),
]


@pytest.mark.parametrize(("notes", "n_notes", "expected"), STATUS_CASES)
def test_affected_notes_get_an_explicit_status(config_path, tmp_path, notes, n_notes, expected):
    result = run_cli(config_path, tmp_path / "out", *[arg for path in notes for arg in ("--notes", path)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assignments = read_assignments(tmp_path / "out")
    assert_nothing_lost(assignments, n_notes)
    counted = result.output.split("notes per status: ")[1].splitlines()[0]
    assert sum(int(part.rsplit(" ", 1)[1]) for part in counted.split(", ")) == n_notes
    by_id = assignments.set_index("note_id")
    for note_id, fields in expected.items():
        for column, value in fields.items():
            found = by_id.at[note_id, column]
            assert found in value if isinstance(value, frozenset) else found == value, (note_id, column, found)


def test_a_one_megabyte_note_is_kept_whole_and_flagged(config_path, tmp_path):
    long_note = ("Vi trenger faste team rundt hver bruker, og opplæring i demens. " * 16_000)[:1_000_000]
    rows = [["note_id", "text"], ["M-1", long_note], *[[f"M-{i}", n] for i, n in enumerate(SOME_NOTES, start=2)]]
    with open(tmp_path / "long.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = run_cli(config_path, tmp_path / "out", "--notes", tmp_path / "long.csv")
    assert result.exit_code == 0, result.output
    assignments = read_assignments(tmp_path / "out")
    assert_nothing_lost(assignments, 5)
    note = assignments.set_index("note_id").loc["M-1"]
    assert note["text"] == long_note and note["flags"] == "long_text" and note["status"] in THEMED


# --------------------------------------------------------------------------- properties


@pytest.fixture(scope="module")
def cached_e5(e5, tmp_path_factory) -> CachedEmbedder:
    """The session's e5 model with one cache for the module: seed themes and personas embed once."""
    return CachedEmbedder(e5, tmp_path_factory.mktemp("e5_cache"), batch_size=32, progress=False)


NOTE_TEXT = st.one_of(
    st.sampled_from([*SOME_NOTES, "", "   ", "\n", "Roald vil vite hvem som kommer", "Knuts far", "😀", "ok"]),
    st.text(alphabet=st.sampled_from(list("aeiouæøåäöbdfgklmnrst ,;.\"'\n") + ["🙏", "é"]), max_size=30),
)
#: Note ids from a small pool so that duplicates are common; "n0-r2" is what a derived id looks like.
NOTE_ID = st.sampled_from(["", "", "a", "b", "c", "n0-r2"])
NOTES_FILE = st.tuples(st.sampled_from(["comma", "semicolon_bom_crlf", "xlsx"]),
                       st.lists(st.tuples(NOTE_ID, NOTE_TEXT), max_size=6))
CORPUS = st.lists(NOTES_FILE, min_size=1, max_size=3)


def write_corpus(folder: Path, corpus: list) -> list[dict]:
    """Write each file; return every non-blank row (a note) with its file, row and cells."""
    rows = []
    for number, (kind, cells) in enumerate(corpus):
        table = [["note_id", "text"], *[list(pair) for pair in cells]]
        if kind == "xlsx":
            name = f"n{number}.xlsx"
            book = openpyxl.Workbook()
            for line in table:
                book.active.append(line)
            book.save(folder / name)
        else:
            name = f"n{number}.csv"
            delimiter, encoding, end = (",", "utf-8", "\n") if kind == "comma" else (";", "utf-8-sig", "\r\n")
            buffer = io.StringIO(newline="")
            csv.writer(buffer, delimiter=delimiter, lineterminator=end).writerows(table)
            (folder / name).write_bytes(buffer.getvalue().encode(encoding))
        rows += [{"file": name, "row": row, "note_id": note_id, "text": text}
                 for row, (note_id, text) in enumerate(cells, start=2) if (note_id + text).strip()]
    return rows


def run_and_read(folder: Path, out: Path, config, embedder) -> pd.DataFrame:
    result = pipeline.run(config, notes_paths=[folder], embedder=embedder, progress=False)
    outputs.write_outputs(result, out)
    return read_assignments(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=CORPUS)
def test_every_input_note_appears_exactly_once_with_a_status(config_path, cached_e5, corpus):
    config = load_config(config_path)
    with tempfile.TemporaryDirectory() as temporary:
        folder, out = Path(temporary) / "notes", Path(temporary) / "out"
        folder.mkdir()
        rows = write_corpus(folder, corpus)
        if not rows:  # only headers and blank rows: a user error, not an empty result
            with pytest.raises(LoadError, match="no notes to analyse"):
                pipeline.run(config, notes_paths=[folder], embedder=cached_e5, progress=False)
            return
        assignments = run_and_read(folder, out, config, cached_e5)
    assert_nothing_lost(assignments, len(rows))
    notes = assignments.set_index([assignments["source_file"].map(lambda name: Path(name).name),
                                   assignments["source_row"].astype(int)])
    assert notes.index.is_unique
    for row in rows:
        note = notes.loc[(row["file"], row["row"])]
        assert note["text"] == row["text"]
        assert (note["status"] == "empty") == (not row["text"].strip())
        flags = note["flags"].split(";")
        if not row["note_id"]:
            assert note["note_id"].startswith(derived_note_id(row["text"]))  # from the text, never the file
        elif note["note_id"] != row["note_id"]:  # the loader's documented handling of a repeated id
            assert note["note_id"].startswith(f"{row['note_id']}~r{row['row']}") and "duplicate_id" in flags


def shuffled_copy(corpus: list, seed: int) -> list:
    shuffler = random.Random(seed)
    return [(kind, shuffler.sample(cells, len(cells))) for kind, cells in corpus]


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=st.lists(NOTE_TEXT, min_size=2, max_size=10), kinds=st.lists(st.sampled_from(["comma", "xlsx"]),
                                                                           min_size=1, max_size=2),
       seed=st.integers(0, 2**16))
def test_shuffled_rows_give_identical_outputs(config_path, cached_e5, monkeypatch, texts, kinds, seed):
    """Same notes (with unique ids) in another row order: identical output files. Only
    assignments.csv's source_row differs, because it is where the note was in the file."""
    from analysis import plots

    monkeypatch.setattr(plots, "run_figures", lambda result: {})  # figures are not compared here
    rows = [(f"id{number:02d}", text) for number, text in enumerate(texts)]
    corpus = [(kind, rows[part::len(kinds)]) for part, kind in enumerate(kinds)]
    if not any(text.strip() for text in texts):
        return
    config = load_config(config_path)
    folder = config.root / "shuffle"  # one place for both versions: source_file is the same
    runs = []
    for version in (corpus, shuffled_copy(corpus, seed)):
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "notes").mkdir(parents=True)
        write_corpus(folder / "notes", version)
        run_and_read(folder / "notes", folder / "out", config, cached_e5)
        runs.append({path.name: path.read_bytes() for path in (folder / "out").glob("*.csv")})
    original, shuffled = runs
    assert original.keys() == shuffled.keys()
    with_rows = {"assignments.csv", "review_queue.csv"}   # they carry each note's source_row
    for name in sorted(original.keys() - with_rows):
        assert original[name] == shuffled[name], name
    for name in sorted(with_rows & original.keys()):
        before, after = (pd.read_csv(io.BytesIO(files[name]), dtype=str, keep_default_na=False)
                         for files in runs)
        pd.testing.assert_frame_equal(before.drop(columns="source_row"), after.drop(columns="source_row"))


@pytest.mark.parametrize("texts", [["x", "x"], ["x"], ["ok", "nei"], ["Fast team", "Fast team", "!"]],
                         ids=["two identical one-letter notes", "one note", "two short notes", "duplicates"])
def test_tiny_corpora_run_with_the_tfidf_backend(config_path, tmp_path, texts):
    """Too little text for LSA: the TF-IDF backend embeds with the raw TF-IDF vectors instead."""
    notes = tmp_path / "tiny.csv"
    notes.write_text("note_id,text\n" + "".join(f"T-{i},{text}\n" for i, text in enumerate(texts)), encoding="utf-8")
    result = run_cli(config_path, tmp_path / "out", "--notes", notes)
    assert result.exit_code == 0, result.output
    assert_nothing_lost(read_assignments(tmp_path / "out"), len(texts))
