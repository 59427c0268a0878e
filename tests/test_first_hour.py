"""An analyst's first hour with their own workshop (issue 13), driven end to end from a temporary folder.

The notes are tests/fixtures/own_workshop: 42 Danish, Swedish and Norwegian library notes in a
semicolon CSV with a BOM, CRLF line ends, a `Tekst;Gruppe;Workshop` header, two blank rows and a
1,329-character note; a 5-theme codebook; 3 personas whose needs are plain sentences. Nothing of
the example corpus (data/raw) may reach any output: no theme, persona, need or description.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.files import read_csv
from analysis.personas import load_personas
from analysis.themes import load_seed_themes

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "own_workshop"
runner = CliRunner()


def _example_strings() -> set[str]:
    """Every theme, persona, need and description of the example corpus (what must not leak)."""
    strings = set()
    for seed in load_seed_themes(ROOT / "data" / "raw" / "seed_themes.yml"):
        strings |= {seed.id, seed.name, seed.description}
    for persona in load_personas(ROOT / "data" / "raw" / "personas.yml"):
        strings |= {persona.id, persona.name, persona.description, *(need.text for need in persona.needs),
                    *(need.id for need in persona.needs)}
    return {s for s in strings if len(s) >= 4}


def _texts(folder: Path) -> dict[str, str]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".csv", ".json", ".md", ".yml", ".html", ".qde", ".ipynb"):
            found[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
        elif path.suffix == ".qdpx":
            with zipfile.ZipFile(path) as archive:
                found[path.name] = archive.read("project.qde").decode("utf-8")
    return found


def _leaks(texts: dict[str, str], example: set[str]) -> list[str]:
    return [f"{name}: {word!r}" for name, text in texts.items() for word in example
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text)]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("my_workshop")
    for path in FIXTURE.iterdir():
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def first_hour(project) -> dict:
    steps = {"init": runner.invoke(app, ["init", str(project)])}
    assert steps["init"].exit_code == 0, steps["init"].output
    config = project / "analysis.toml"
    steps["run"] = runner.invoke(app, ["run", "--config", str(config)])
    assert steps["run"].exit_code == 0, steps["run"].output
    out = project / "out"
    steps["report"] = runner.invoke(app, ["report", "--from", str(out), "--out", str(project / "report.html")])
    steps["qdpx"] = runner.invoke(app, ["export", "qdpx", "--from", str(out), "--out", str(project / "run.qdpx"),
                                        "--config", str(ROOT / "analysis.toml")])  # the example's config, on purpose
    for step in ("report", "qdpx"):
        assert steps[step].exit_code == 0, steps[step].output
    return steps


def test_init_writes_a_config_for_the_users_files_and_says_what_to_run(project, first_hour):
    output = first_hour["init"].output
    assert "text column 'Tekst'" in output and "codebook: codebook.yml; personas: personas.yml" in output
    assert output.strip().splitlines()[-1] == f"next: analysis run --config {project / 'analysis.toml'}"
    config = (project / "analysis.toml").read_text(encoding="utf-8")
    assert 'notes = ["workshop_bibliotek.csv"]' in config and 'breakdowns = ["gruppe", "workshop"]' in config
    assert "data/raw" not in config and (project / "out" / "cache").is_dir()  # the cache went inside out
    # A semicolon notes file: the tables are written the way a Nordic Excel opens them, with the guard.
    assert 'csv_dialect = "nordic"' in config
    assignments = (project / "out" / "assignments.csv").read_bytes()
    assert assignments.startswith(b"\xef\xbb\xbfnote_id;theme_id;") and not assignments[3:].startswith(b"sep=")


def test_the_summary_names_the_files_the_columns_and_the_blank_rows(first_hour):
    lines = first_hour["run"].stdout.splitlines()  # stdout: a progress bar on stderr may share a line
    assert "notes read: 42 from 1 file(s)" in lines
    assert "text column: 'Tekst'; note ids from the text (no id column)" in lines
    assert "blank rows skipped: 2 (2 in workshop_bibliotek.csv)" in lines
    assert "codebook: codebook.yml (5 seed themes)" in lines
    assert "personas: personas.yml (3 personas)" in lines
    assert any(line.startswith("new-theme structure: ") for line in lines)


def test_no_example_theme_persona_or_description_appears_in_any_output(project, first_hour):
    texts = _texts(project / "out") | _texts(project)
    assert {"assignments.csv", "report.html", "run.qdpx", "run_inputs/personas.yml"} <= set(texts)
    assert not _leaks(texts, _example_strings())


def test_who_says_what_is_written_and_reported(project, first_hour):
    breakdowns = read_csv(project / "out" / "breakdowns.csv")
    assert list(breakdowns.columns) == ["attribute", "value", "theme_id", "notes", "share_within_value",
                                        "share_within_theme", "adjusted_residual", "small_cell", "quote_note_id"]
    assert set(breakdowns["attribute"]) == {"gruppe", "workshop"}
    assert set(breakdowns.loc[breakdowns["attribute"] == "workshop", "value"]) == {
        "Bibliotek DK", "Bibliotek NO", "Bibliotek SE"}
    themed = read_csv(project / "out" / "assignments.csv")
    themed = themed[themed["status"].isin(["assigned", "new_theme"])]
    per_attribute = breakdowns.assign(notes=breakdowns["notes"].astype(int)).groupby("attribute")["notes"].sum()
    assert (per_attribute == len(themed)).all()  # every themed note counted once per attribute
    report = (project / "report.html").read_text(encoding="utf-8")
    assert "Who says what" in report and "Themes by workshop" in report
    assert re.search(r"<footer>note-[0-9a-f]{10} · note · gruppe: Gruppe \d · workshop: Bibliotek (DK|NO|SE)</footer>",
                     report)


def test_the_exports_cases_are_the_users_personas_with_descriptions(project, first_hour):
    with zipfile.ZipFile(project / "run.qdpx") as archive:
        root = ElementTree.fromstring(archive.read("project.qde"))
    namespace = {"q": root.tag.partition("}")[0].lstrip("{")}
    cases = {case.get("name"): case.findtext("q:Description", namespaces=namespace)
             for case in root.iterfind(".//q:Cases/q:Case", namespace)}
    assert list(cases) == ["Birthe", "Yusuf", "Kerstin"]
    assert "Birthe er 78 og bor alene" in cases["Birthe"] and "Kunne få breve og blanketter på papir" in cases["Birthe"]
    codes = {code.get("name"): code.findtext("q:Description", namespaces=namespace)
             for code in root.iterfind(".//q:Code", namespace) if code.get("isCodable") == "true"}
    assert codes["Papir og blanketter"].startswith("Breve, skemaer og blanketter på papir")


def test_renaming_the_notes_file_keeps_every_note_id(project, first_hour, tmp_path):
    moved = tmp_path / "elsewhere" / "bibliotek_rettet.csv"
    moved.parent.mkdir()
    shutil.copy(project / "workshop_bibliotek.csv", moved)
    before = read_csv(project / "out" / "assignments.csv")
    from analysis.load import load_notes

    assert sorted(load_notes([moved])["note_id"]) == sorted(before["note_id"])


def test_the_examples_files_never_reach_a_run_on_other_notes(project, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # `analysis run --notes my.csv` in the project: analysis.toml is the example's
    result = runner.invoke(app, ["run", "--notes", str(project / "workshop_bibliotek.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("note: the config's seed codebook data/raw/seed_themes.yml is not used")
    assert lines[1].startswith("note: the config's personas file data/raw/personas.yml is not used")
    assert "codebook: none (every theme is found in the notes)" in lines and "personas: none" in lines
    assert not _leaks(_texts(tmp_path), _example_strings())


@pytest.mark.parametrize("name", ["02-themes.ipynb", "06-review-loop.ipynb"])
def test_notebooks_02_and_06_run_on_the_users_config(project, first_hour, tmp_path, name):
    environment = {**os.environ, "ANALYSIS_CONFIG": str(project / "analysis.toml")}
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=900", "--output-dir", str(tmp_path),
               str(ROOT / "notebooks" / name)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1200)
    assert finished.returncode == 0, finished.stderr[-3000:]
    executed = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    outputs = {name: json.dumps([cell.get("outputs", []) for cell in executed["cells"]], ensure_ascii=False)}
    assert "Papir og blanketter" in outputs[name]
    assert not _leaks(outputs, _example_strings())
