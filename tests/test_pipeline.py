"""End to end: the CLI on a small committed fixture, with the real offline e5 model."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.config import load_config
from analysis import pipeline

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "e2e"
PERSONAS = ROOT / "data" / "raw" / "personas.yml"
SEEDS = ROOT / "data" / "raw" / "seed_themes.yml"

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A throwaway project: the committed config with the fixture as its notes."""
    folder = tmp_path_factory.mktemp("project")
    shutil.copytree(FIXTURE, folder / "notes")
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]')
    config = config.replace('"data/raw/personas.yml"', f'"{PERSONAS.as_posix()}"')
    config = config.replace('"data/raw/seed_themes.yml"', f'"{SEEDS.as_posix()}"')
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run_output(project) -> tuple[object, Path]:
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml")])
    return result, project / "data" / "processed"


def _input_count() -> int:
    notes = pd.read_csv(FIXTURE / "notes.csv", dtype=str)
    return len(notes)


def test_run_writes_every_output(run_output):
    result, out = run_output
    assert result.exit_code == 0, result.output
    for name in ["assignments.csv", "themes.csv", "persona_theme.csv", "k_selection.csv", "persona_needs.csv",
                 "trace.csv", "site_theme.csv", "persona_report.json"]:
        assert (out / name).is_file(), name
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"theme_sizes.png", "theme_persona_heatmap.png", "persona_theme_flow.png",
            "persona_top_themes_roald.png"} <= set(figures)
    assert sorted(p.name for p in (out / "personas").glob("*.md")) == ["edel.md", "elias.md", "knut.md", "roald.md"]
    report = json.loads((out / "persona_report.json").read_text(encoding="utf-8"))
    # The config's 0.12 is a floor; the corpus's own bar (notes that speak for nobody) may be higher.
    assert report["similarity_threshold"] == report["similarity"]["threshold"] >= 0.12
    assert report["similarity"]["status"] in {"reliable", "not reliable: linked nothing"}
    assert {"chi2", "dof", "p_value", "trustworthy"} <= set(report["theme_persona_tests"])
    sites = pd.read_csv(out / "site_theme.csv")
    assert set(sites["site"]) == {"baerum", "mariestad"}
    assert "notes read:" in result.output and "notes per status:" in result.output


def test_every_input_note_is_accounted_for(run_output):
    _, out = run_output
    assignments = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    table_rows = assignments[assignments["source_type"] == "note"]
    assert len(table_rows) == _input_count()
    assert assignments["note_id"].is_unique
    assert set(assignments["status"]) <= {"assigned", "new_theme", "unassigned", "empty"}
    empty = assignments[assignments["status"] == "empty"]
    assert len(empty) == 2 and (empty["theme_id"] == "").all()
    required = {"note_id", "theme_id", "theme_label", "theme_score", "persona_id", "persona_score", "status"}
    assert required <= set(assignments.columns)


def test_themes_table_is_labelled(run_output):
    _, out = run_output
    themes = pd.read_csv(out / "themes.csv", dtype=str, keep_default_na=False)
    assert {"theme_id", "label", "keywords", "size", "representative_note_ids"} <= set(themes.columns)
    seeded = themes[themes["kind"] == "seed"]
    assert "familiar_staff_transition" in set(seeded["theme_id"])
    transition = seeded.set_index("theme_id").loc["familiar_staff_transition"]
    assert int(transition["size"]) >= 5
    assert transition["label"] == "Känd personal följer med vid flytt"
    assignments = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    sizes = assignments[assignments["theme_id"] != ""]["theme_id"].value_counts()
    for _, row in themes.iterrows():
        assert int(row["size"]) == int(sizes.get(row["theme_id"], 0))


def test_persona_links_use_tags_and_mentions(run_output):
    _, out = run_output
    assignments = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    notes = pd.read_csv(FIXTURE / "notes.csv", dtype=str, keep_default_na=False).set_index("note_id")
    tagged = notes[notes["persona"].str.strip() != ""]
    linked = assignments.set_index("note_id").loc[tagged.index]
    assert (linked["persona_id"] == tagged["persona"].str.lower()).all()
    assert (linked["persona_method"] == "tag").all()
    persona_theme = pd.read_csv(out / "persona_theme.csv")
    assert persona_theme["count"].sum() == (assignments["theme_id"] != "").sum()


def test_second_run_reads_the_cache_and_gives_identical_files(run_output, project):
    _, out = run_output
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml")])
    assert result.exit_code == 0, result.output
    assert "(0 embedded," in result.output
    after = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert before == after


def test_shuffled_rows_give_identical_assignments(project, tmp_path):
    notes = pd.read_csv(FIXTURE / "notes.csv", dtype=str, keep_default_na=False)
    shuffled = tmp_path / "notes"
    shuffled.mkdir()
    notes.sample(frac=1.0, random_state=7).to_csv(shuffled / "notes.csv", index=False)
    shutil.copy(FIXTURE / "ledningsmote.md", shuffled / "ledningsmote.md")
    config = load_config(project / "analysis.toml")
    original = pipeline.run(config, progress=False).assignments
    # Notes from outside the config's own get its codebook and personas only when named.
    reordered = pipeline.run(config, notes_paths=[shuffled], progress=False,
                             seed_themes_path=config.resolve(config.paths.seed_themes),
                             personas_path=config.resolve(config.paths.personas)).assignments
    columns = ["note_id", "theme_id", "theme_score", "persona_id", "status"]
    pd.testing.assert_frame_equal(original[columns], reordered[columns])


def test_missing_text_column_is_a_clear_error(project, tmp_path):
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["note_id", "tekstt"], ["a", "hei"]])
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml"), "--notes", str(bad),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "bad.csv" in result.output and "text" in result.output
    assert "Traceback" not in result.output


def test_missing_config_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml" in result.output


def test_help_is_useful():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "evaluate" in result.output
    result = runner.invoke(app, ["run", "--help"])
    assert "--seed-themes" in result.output and "--personas" in result.output and "--out" in result.output


def test_evaluate_json_has_exactly_the_documented_keys(project):
    result = runner.invoke(app, ["evaluate", "--config", str(project / "analysis.toml"), "--gold", "gold_theme",
                                 "--seed-themes", str(SEEDS), "--personas", str(PERSONAS),
                                 "--gold-persona", "gold_persona", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert set(record) == {"gold_column", "gold_persona_column", "measured", "metrics"}
    metrics = record["metrics"]
    assert set(metrics) == {"n", "n_themes", "ari", "ami", "nmi", "nmi_lang", "per_theme_recall",
                            "accuracy", "macro_f1", "kappa", "persona_accuracy", "persona_macro_f1"}
    assert metrics["n"] == 43  # 45 notes, 2 with empty text
    assert 0.0 < metrics["accuracy"] <= 1.0
    assert metrics["persona_accuracy"] > 0.5
    assert record["measured"]["seed_themes_from"] == "named" and record["measured"]["overrides"].startswith("not")


def test_evaluate_uses_the_configs_files_and_says_so(project):
    """Without --seed-themes/--personas the config's files are measured, as in a run and notebook 04."""
    result = runner.invoke(app, ["evaluate", "--config", str(project / "analysis.toml"),
                                 "--gold-persona", "gold_persona"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"seed themes: {SEEDS.as_posix()} (from the config's [paths])"
    assert lines[1] == f"personas: {PERSONAS.as_posix()} (from the config's [paths])"
    assert lines[2].startswith("overrides: not applied")
    run_evaluation = json.loads((project / "data" / "processed" / "evaluation.json").read_text(encoding="utf-8"))
    inductive = runner.invoke(app, ["evaluate", "--config", str(project / "analysis.toml"), "--no-seed-themes",
                                    "--no-personas", "--json"])
    record = json.loads(inductive.output.strip().splitlines()[-1])
    assert record["measured"]["seed_themes"] is None and record["measured"]["personas_from"] == "none"
    assert record["metrics"]["accuracy"] is None and record["metrics"]["persona_accuracy"] is None
    assert run_evaluation["measured"]["seed_themes_from"] == "config"


def test_the_configs_seed_text_reaches_the_seed_prototypes(e5):
    """[themes] seed_text decides how the run embeds its seed themes (not only the default)."""
    from analysis.themes import seed_prototypes

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")]},
                         themes={"seed_text": "name_description"})
    result = pipeline.run(config, embedder=e5, progress=False)
    used = result.fit_inputs["seed_vectors"]
    assert np.array_equal(used, seed_prototypes(result.seeds, e5, "name_description"))
    assert not np.allclose(used, seed_prototypes(result.seeds, e5, "all"))
