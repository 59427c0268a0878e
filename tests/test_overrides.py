"""The analyst's override file: each operation, stale entries, and errors that name the entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis import pipeline
from analysis.cli import app
from analysis.config import load_config
from analysis.embed.cache import CachedEmbedder
from analysis.overrides import OverridesFileError, load_overrides

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "e2e"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("overrides-project")
    shutil.copytree(FIXTURE, folder / "notes")
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]')
    for name in ("personas.yml", "seed_themes.yml"):
        config = config.replace(f'"data/raw/{name}"', f'"{(ROOT / "data" / "raw" / name).as_posix()}"')
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    (folder / "data").mkdir()
    return folder


@pytest.fixture(scope="module")
def embedder(e5, tmp_path_factory):
    return CachedEmbedder(e5, tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def baseline(project, embedder):
    return pipeline.run(load_config(project / "analysis.toml"), embedder=embedder, progress=False)


def _run_with(project, embedder, text: str):
    path = project / "data" / "overrides.yml"
    path.write_text(text, encoding="utf-8")
    return pipeline.run(load_config(project / "analysis.toml"), embedder=embedder, progress=False)


def _row(result, note_id):
    return result.assignments.set_index("note_id").loc[note_id]


def _theme_sizes(result) -> dict:
    return dict(zip(result.themes["theme_id"], result.themes["size"]))


def test_no_file_means_no_overrides(baseline):
    assert baseline.overrides_report == []
    assert "overrides" not in baseline.inputs
    assert not baseline.assignments["status"].isin(["pinned", "excluded"]).any()


def test_exclude_and_pin(project, embedder, baseline):
    assigned = baseline.assignments[baseline.assignments["status"] == "assigned"]
    excluded_id, pinned_id = assigned["note_id"].iloc[0], assigned["note_id"].iloc[1]
    target = next(t for t in baseline.themes["theme_id"] if t != _row(baseline, pinned_id)["theme_id"])
    result = _run_with(project, embedder, f"""
exclude:
  - {{note: {excluded_id}, reason: duplicate of another note}}
pin:
  - {{note: {pinned_id}, theme: {target}}}
""")
    row = _row(result, excluded_id)
    assert row["status"] == "excluded" and row["theme_id"] == ""
    assert "duplicate of another note" in row["status_reason"]
    row = _row(result, pinned_id)
    assert row["status"] == "pinned" and row["theme_id"] == target
    # What the model said before the pin: the model after learning from the file (analysis.learn).
    assert "the model said" in row["status_reason"]
    assert len(result.assignments) == len(baseline.assignments)
    assert [r["state"] for r in result.overrides_report] == ["applied", "applied"]


def test_merge_keeps_every_note(project, embedder, baseline):
    sizes = {t: s for t, s in _theme_sizes(baseline).items() if s > 0}
    first, second = sorted(sizes, key=lambda t: (-sizes[t], t))[:2]
    result = _run_with(project, embedder, f"""
merge:
  - {{themes: [{first}, {second}], into: joined, name: "Sammenslått tema"}}
""")
    merged = _theme_sizes(result)
    assert first not in merged and second not in merged
    assert merged["joined"] == sizes[first] + sizes[second]
    assert result.themes.set_index("theme_id").loc["joined", "label"] == "Sammenslått tema"
    was = baseline.assignments["theme_id"].isin([first, second]).to_numpy()
    assert (result.assignments["theme_id"].to_numpy()[was] == "joined").all()


def test_split_into_two_parts(project, embedder, baseline):
    sizes = _theme_sizes(baseline)
    biggest = max(sizes, key=lambda t: (sizes[t], t))
    result = _run_with(project, embedder, f"split:\n  - {{theme: {biggest}, into: 2}}\n")
    parts = _theme_sizes(result)
    assert biggest not in parts
    assert parts[f"{biggest}.1"] + parts[f"{biggest}.2"] == sizes[biggest]
    assert parts[f"{biggest}.1"] >= parts[f"{biggest}.2"] > 0
    # The model itself now knows the parts: transform has one column per theme.
    assert result.model.prototypes_.shape[0] == len(result.model.themes_)


def test_rename_and_stale_entries(project, embedder, baseline):
    theme = baseline.themes["theme_id"].iloc[0]
    result = _run_with(project, embedder, f"""
rename:
  - {{theme: {theme}, name: "Et bedre navn"}}
  - {{theme: no_such_theme, name: Ingenting}}
exclude:
  - {{note: NO-SUCH-NOTE}}
""")
    assert result.themes.set_index("theme_id").loc[theme, "label"] == "Et bedre navn"
    states = {(r["operation"], r["state"]) for r in result.overrides_report}
    assert states == {("rename", "applied"), ("rename", "stale"), ("exclude", "stale")}
    stale = [r["detail"] for r in result.overrides_report if r["state"] == "stale"]
    assert any("NO-SUCH-NOTE" in d for d in stale) and any("no_such_theme" in d for d in stale)


def test_rename_only_keeps_every_score(project, embedder, baseline):
    """Renaming changes no membership: prototypes, lexical evidence, scores and margins stay."""
    theme = baseline.themes["theme_id"].iloc[0]
    result = _run_with(project, embedder, f"rename:\n  - {{theme: {theme}, name: Nytt navn}}\n")
    columns = ["theme_id", "theme_score", "theme_margin", "secondary_theme_id", "status"]
    pd.testing.assert_frame_equal(result.assignments[columns], baseline.assignments[columns])


def test_merge_rescores_with_the_seeds_lexical_evidence(project, embedder, baseline):
    """A note that stays in an untouched seed theme keeps its score (fit evidence included);
    the notes of a merge of two seed themes score at least their best seed's evidence allows."""
    assert baseline.seeds and baseline.model.lexical_weights_, "the fixture must use lexical evidence"
    seeds = [s.id for s in baseline.seeds]
    sizes = _theme_sizes(baseline)
    first, second = sorted(seeds, key=lambda t: (-sizes.get(t, 0), t))[:2]
    result = _run_with(project, embedder, f"merge:\n  - {{themes: [{first}, {second}], into: {first}}}\n")
    before = baseline.assignments.set_index("note_id")
    after = result.assignments.set_index("note_id")
    untouched = before.index[before["theme_id"].isin(set(seeds) - {first, second})
                             & after["theme_id"].eq(before["theme_id"])]
    assert len(untouched) > 0
    # Their own theme's score is unchanged: same prototype, same lexical evidence.
    np.testing.assert_allclose(after.loc[untouched, "theme_score"], before.loc[untouched, "theme_score"])


def test_cli_reports_stale_overrides(project):
    (project / "data" / "overrides.yml").write_text("pin:\n  - {note: GONE-1, theme: competence}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(project / "analysis.toml"),
                                      "--out", str(project / "out")])
    assert result.exit_code == 0, result.output
    assert "overrides: 0 applied, 1 stale" in result.output
    assert "GONE-1" in result.output
    assert (project / "out" / "overrides_report.json").is_file()


@pytest.mark.parametrize("text, expected", [
    ("pin:\n  - {note: B1-001}\n", "pin entry 1 lacks ['theme']"),
    ("split:\n  - {theme: competence, into: 1}\n", "split entry 1"),
    ("merge:\n  - {themes: [competence], into: x}\n", "merge entry 1"),
    ("rename: [{theme: a, name: b}]\nrenmae: []\n", "unknown key(s) ['renmae']"),
    ("pin: [note: {\n", "not valid YAML"),
])
def test_bad_overrides_name_the_file_and_entry(tmp_path, text, expected):
    path = tmp_path / "overrides.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OverridesFileError) as error:
        load_overrides(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_bad_overrides_through_the_cli_exit_2(project):
    (project / "data" / "overrides.yml").write_text("exclude:\n  - {reason: no note id}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(project / "analysis.toml"),
                                      "--out", str(project / "out-bad")])
    assert result.exit_code == 2
    assert "overrides.yml" in result.output and "exclude entry 1" in result.output
    assert "Traceback" not in result.output
