"""files.py: the one CSV writer/reader (both dialects, the formula guard), sha256, YAML errors."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.files import (CSV_DIALECTS, FORMULA_TRIGGERS, read_csv, read_yaml, sha256_file, sniff_dialect,
                            write_csv)

TRICKY = ["=SUM(A1:A2)", "+47 99 99 99 99", "-minus", "@mention", "'=already quoted", "1,5", "-0,25", "0.5",
          "Kaffe ☕ og vafler; tirsdag", "linje 1\nlinje 2", "æøå ÆØÅ äö", ""]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"note_id": [f"n{i:03d}" for i in range(len(TRICKY))], "text": TRICKY,
                         "theme_score": np.linspace(-0.5, 0.75, len(TRICKY)).round(6),
                         "source_row": np.arange(1, len(TRICKY) + 1)})


@pytest.mark.parametrize("dialect", sorted(CSV_DIALECTS))
def test_written_tables_read_back_exactly_in_every_dialect(tmp_path, dialect):
    frame = _frame()
    path = write_csv(frame, tmp_path / "t.csv", dialect=dialect)
    back = read_csv(path)  # the dialect is read from the header line
    assert back["text"].tolist() == TRICKY
    assert back["note_id"].tolist() == frame["note_id"].tolist()
    assert back["theme_score"].astype(float).tolist() == frame["theme_score"].tolist()
    assert back["source_row"].astype(int).tolist() == frame["source_row"].tolist()
    assert read_csv(path, dialect=dialect).equals(back)


def test_the_nordic_dialect_is_what_a_nordic_excel_opens(tmp_path):
    """';' between columns, decimal commas, a UTF-8 BOM and no sep= line (which would make Excel drop
    the BOM); every formula trigger and every text that Excel would take for a number is guarded."""
    raw = write_csv(_frame(), tmp_path / "t.csv", dialect="nordic").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and not raw[3:].startswith(b"sep=")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "note_id;text;theme_score;source_row"
    rows = list(csv.reader(text.splitlines(keepends=True), delimiter=";"))
    assert rows[1] == ["n000", "'=SUM(A1:A2)", "-0,5", "1"]
    cells = {row[0]: row[1] for row in rows[1:]}
    for note_id, original in zip(_frame()["note_id"], TRICKY):
        if original.lstrip("'").startswith(FORMULA_TRIGGERS) or original in ("1,5", "-0,25"):
            assert cells[note_id] == "'" + original
    assert sniff_dialect(tmp_path / "t.csv").name == "nordic"


def test_the_standard_dialect_is_unchanged(tmp_path):
    text = write_csv(_frame(), tmp_path / "t.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "note_id,text,theme_score,source_row"
    assert "\n" + "n005,\"1,5\"," in text and "n000,'=SUM(A1:A2),-0.5,1" in text


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12), min_size=1, max_size=6),
       st.sampled_from(sorted(CSV_DIALECTS)))
def test_any_text_round_trips(tmp_path_factory, texts, dialect):
    path = write_csv(pd.DataFrame({"text": texts}), tmp_path_factory.mktemp("csv") / "t.csv", dialect=dialect)
    back = read_csv(path, dialect=dialect)
    assert back["text"].tolist() == ["" if t == "" else t for t in texts]


def test_sha256_file_is_the_file_hash(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path, chunk=1 << 16) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_yaml_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text("themes:\n  - id: a\n    name \"open\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"t\.yml, line 3, column \d+: not valid YAML"):
        read_yaml(path, ValueError, "seed themes")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="Save the seed themes as a UTF-8 YAML file"):
        read_yaml(path, ValueError, "seed themes")
