"""The run summary and the manifest say which columns the themes were centred on (issue 12, point 1)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.cli import app

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "e2e"
runner = CliRunner()


def _project(folder: Path, note_type: bool, document: bool) -> Path:
    """The e2e notes, inductive (no codebook, no personas), with a 'type' column and a blank
    language in every fifth row when asked, and with or without the fixture's document."""
    (folder / "notes").mkdir(parents=True)
    with (FIXTURE / "notes.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows):
        if note_type:
            row["type"] = "observation" if number % 3 == 0 else "idea"
        if number % 5 == 0:
            row["lang"] = ""
    with (folder / "notes" / "notes.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if document:
        shutil.copy(FIXTURE / "ledningsmote.md", folder / "notes")
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8").replace('notes = ["data/raw"]', 'notes = ["notes"]')
    config = config.replace('personas = "data/raw/personas.yml"', 'personas = ""')
    config = config.replace('seed_themes = "data/raw/seed_themes.yml"', 'seed_themes = ""')
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("centring") / "typed", note_type=True, document=True)
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml"), "--out", str(project / "out")])
    assert result.exit_code == 0, result.output
    return result.output, json.loads((project / "out" / "manifest.json").read_text(encoding="utf-8"))


def test_the_summary_names_each_centred_column_and_where_its_values_came_from(typed_run):
    output, _ = typed_run
    line = next(line for line in output.splitlines() if line.startswith("centred on:"))
    lang, source_type = line.removeprefix("centred on: ").split("), ")
    assert lang.startswith("lang (")
    assert {"column 'lang'", "detected from the text", "documents' front matter"} <= set(lang[6:].split("; "))
    assert source_type in ("source_type (column 'type'; documents' front matter)",
                           "source_type (documents' front matter; column 'type')")
    assert "not on" not in line


def test_the_manifest_records_the_centring(typed_run):
    _, manifest = typed_run
    centred = {entry["column"]: entry["from"] for entry in manifest["centring"]["centred_on"]}
    assert list(centred) == ["lang", "source_type"]
    assert sorted(centred["source_type"]) == ["column 'type'", "documents' front matter"]
    assert manifest["centring"]["not_centred_on"] == []


def test_a_column_with_one_value_is_said_not_to_be_centred_on(tmp_path):
    project = _project(tmp_path / "plain", note_type=False, document=False)
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml"), "--out", str(project / "out")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("centred on:"))
    assert line.endswith("; not on source_type (one value only ('note'))"), line
    assert line.startswith("centred on: lang (")
