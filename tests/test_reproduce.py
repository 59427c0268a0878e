"""Reproducing a run on another machine: the vector hash, the bundle, and verify with and without it.

Another CPU gives vectors that differ in their last bits (docs/reproducing.md, "Reproducing our numbers").
These tests stand in for that machine with an embedder whose vectors are perturbed, and check
that a bundle's recorded vectors give identical outputs while re-embedding is reported with
its deviation.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.embed.e5 import E5Embedder
from analysis.manifest import VECTORS_NAME, read_manifest, read_note_vectors, vectors_sha256

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "e2e"
runner = CliRunner()


def make_project(folder: Path) -> Path:
    """The 49-note e2e fixture with the repository's seed themes, personas and config."""
    shutil.copytree(FIXTURE, folder / "notes")
    shutil.copytree(ROOT / "data" / "raw", folder / "reference", ignore=shutil.ignore_patterns("baerum", "mariestad"))
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]').replace('"data/raw/', '"reference/')
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("repro") / "project")
    result = _invoke("run", "--config", project / "analysis.toml", "--out", project / "out")
    assert result.exit_code == 0, result.output
    return project / "out"


@pytest.fixture
def other_machine(monkeypatch):
    """Every text embedded from now on gets vectors off by Gaussian noise (σ = 1e-4), renormalised."""
    original = E5Embedder.encode
    calls = []

    def perturbed(self, texts, kind="query"):
        calls.append(len(texts))
        vectors = original(self, texts, kind).astype(np.float64)
        vectors += np.random.default_rng(len(texts)).normal(0.0, 1e-4, vectors.shape)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(E5Embedder, "encode", perturbed)
    return calls


def test_manifest_records_the_hash_of_the_vector_matrix(run_dir):
    manifest = read_manifest(run_dir / "manifest.json")
    note_ids, vectors = read_note_vectors(run_dir / VECTORS_NAME)
    assert manifest["vectors"]["sha256"] == vectors_sha256(vectors)
    assert manifest["vectors"]["shape"] == [len(note_ids), 384]
    assert VECTORS_NAME in manifest["outputs"]
    assert vectors_sha256(vectors + np.float32(1e-7)) != manifest["vectors"]["sha256"]


def test_bundle_holds_hashes_and_vectors_but_inputs_only_when_asked(run_dir, tmp_path):
    config = run_dir.parent / "analysis.toml"
    first, second, full = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "full.zip"
    for out, extra in ((first, []), (second, []), (full, ["--with-inputs"])):
        result = _invoke("export", "bundle", "--from", run_dir, "--out", out, "--config", config, *extra)
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()  # no clock in the bundle
    names = zipfile.ZipFile(first).namelist()
    assert {"bundle.json", "manifest.json", "config.json", "inputs.json"} <= set(names)
    assert [n for n in names if n.startswith("cache/") and n.endswith("-merged.npz")]
    assert {f"outputs/{name}" for name in read_manifest(run_dir / "manifest.json")["outputs"]} <= set(names)
    assert not [n for n in names if n.startswith("inputs/")]
    with zipfile.ZipFile(full) as archive:
        packed = archive.read("inputs/notes/notes.csv")
    assert packed == (run_dir.parent / "notes" / "notes.csv").read_bytes()


def test_verify_bundle_reuses_the_recorded_vectors_on_another_machine(run_dir, tmp_path, other_machine):
    bundle = tmp_path / "run.zip"
    config = run_dir.parent / "analysis.toml"
    assert _invoke("export", "bundle", "--from", run_dir, "--out", bundle, "--config", config,
                   "--with-inputs").exit_code == 0
    elsewhere = tmp_path / "partner"
    elsewhere.mkdir()
    result = _invoke("verify", "--bundle", bundle, "--config", elsewhere / "analysis.toml")
    assert result.exit_code == 0, result.output
    assert other_machine == []  # nothing was embedded: every vector came from the bundle
    n = read_manifest(run_dir / "manifest.json")["vectors"]["shape"][0]
    assert f"all {n} note vectors identical to the recorded ones" in result.output
    assert "identical:" in result.output


def test_verify_bundle_with_the_partners_own_copy_of_the_notes(run_dir, tmp_path, other_machine):
    bundle = tmp_path / "run.zip"
    assert _invoke("export", "bundle", "--from", run_dir, "--out", bundle,
                   "--config", run_dir.parent / "analysis.toml").exit_code == 0
    partner = make_project(tmp_path / "partner")
    moved = shutil.move(partner / "notes", tmp_path / "their-notes")
    result = _invoke("verify", "--bundle", bundle, "--config", partner / "analysis.toml", "--notes", moved)
    assert result.exit_code == 0, result.output
    assert other_machine == []


def test_verify_bundle_names_a_changed_note(run_dir, tmp_path):
    bundle = tmp_path / "run.zip"
    assert _invoke("export", "bundle", "--from", run_dir, "--out", bundle,
                   "--config", run_dir.parent / "analysis.toml").exit_code == 0
    partner = make_project(tmp_path / "partner")
    notes = partner / "notes" / "notes.csv"
    notes.write_text(notes.read_text(encoding="utf-8").replace("team", "lag", 1), encoding="utf-8")
    result = _invoke("verify", "--bundle", bundle, "--config", partner / "analysis.toml")
    assert result.exit_code == 1
    assert "error: input notes/notes.csv: sha256" in result.output


def test_verify_without_the_bundle_reports_how_far_the_new_vectors_are(run_dir, tmp_path, other_machine):
    partner = make_project(tmp_path / "partner")  # a clone on another machine: no embedding cache
    result = _invoke("verify", run_dir / "manifest.json", "--config", partner / "analysis.toml")
    assert sum(other_machine) > 0  # the notes were embedded again, on "another machine"
    lines = result.output.splitlines()
    vector_line = next(line for line in lines if line.startswith("vectors:"))
    n = read_manifest(run_dir / "manifest.json")["vectors"]["shape"][0]
    assert f"{n} of {n} note vectors differ" in vector_line
    maximum = float(vector_line.split("max |difference| ")[1].split(",")[0])
    assert 1e-5 < maximum < 1e-3  # the size of σ = 1e-4 noise, not a different model
    assert lines.index(vector_line) < min(i for i, line in enumerate(lines) if "output" in line)
    assert "warning: vectors: sha256" in result.output
    assert result.exit_code == 1  # at least vectors.npz differs


def test_verify_needs_a_manifest_or_a_bundle(tmp_path):
    result = _invoke("verify")
    assert result.exit_code == 2
    assert "either a manifest.json or --bundle" in result.output
    result = _invoke("verify", "--bundle", tmp_path / "missing.zip")
    assert result.exit_code == 2
    assert "bundle not found" in result.output
