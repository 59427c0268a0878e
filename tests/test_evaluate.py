"""evaluate: recall table, comparing two runs, and stability across seeds and bootstrap resamples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import evaluate
from analysis.themes import ThemeModel


def _model(**params) -> ThemeModel:
    return ThemeModel(min_k=2, max_k=6, centre_by=("lang",), min_theme_size=3, **params)


@pytest.fixture(scope="module")
def topic_groups(topic_notes) -> pd.DataFrame:
    return topic_notes[["lang"]]


# --------------------------------------------------------------------------- recall table


def test_recall_table_matches_per_theme_recall():
    gold = np.array(["coffee"] * 4 + ["parking"] * 3 + ["meals"] * 2)
    predicted = np.array(["a", "a", "a", "b", "b", "b", "a", "c", "b"])
    report = evaluate.EvaluationReport(metrics={}, table=pd.DataFrame({"gold": gold, "predicted": predicted}))
    table = evaluate.recall_table(report).set_index("gold_theme")
    expected = evaluate.per_theme_recall(gold, predicted)
    assert table["recall"].to_dict() == pytest.approx(expected)
    assert table.loc["coffee", "matched_theme"] == "a" and table.loc["coffee", "matched_notes"] == 3
    assert table["notes"].sum() == len(gold)


# --------------------------------------------------------------------------- two runs


def _assignments(note_ids, themes, statuses=None) -> pd.DataFrame:
    return pd.DataFrame({"note_id": note_ids, "theme_id": themes,
                         "status": statuses or ["assigned"] * len(note_ids)})


def test_identical_partitions_agree_whatever_the_theme_names():
    first = _assignments(["n1", "n2", "n3", "n4"], ["fixed_team", "fixed_team", "day_plan", ""])
    renamed = _assignments(["n4", "n3", "n2", "n1"], ["", "new_02", "new_01", "new_01"])
    agreement = evaluate.assignment_agreement(first, renamed)
    assert agreement == {"n": 4, "ari": 1.0, "ami": 1.0, "nmi": 1.0}
    table = evaluate.assignment_crosstab(first, renamed, names=("guided", "inductive"))
    assert table.loc["fixed_team", "new_01"] == 2 and table.loc["unassigned", "unassigned"] == 1
    assert table.index.name == "guided" and table.columns.name == "inductive"


def test_different_partitions_score_low_and_empty_notes_are_left_out():
    first = _assignments(["n1", "n2", "n3", "n4", "e1"], ["a", "a", "b", "b", ""],
                         ["assigned"] * 4 + ["empty"])
    crossed = _assignments(["n1", "n2", "n3", "n4", "e1"], ["x", "y", "x", "y", ""],
                           ["new_theme"] * 4 + ["empty"])
    agreement = evaluate.assignment_agreement(first, crossed)
    assert agreement["n"] == 4 and agreement["ari"] < 0


def test_runs_over_different_notes_cannot_be_compared():
    with pytest.raises(evaluate.EvaluationError, match="share no note ids"):
        evaluate.assignment_agreement(_assignments(["a"], ["t"]), _assignments(["b"], ["t"]))


def test_guided_and_inductive_runs_of_the_fixture(small_run, e5):
    from analysis import pipeline
    from analysis.config import load_config

    inductive = pipeline.run(load_config(small_run.config.root / "analysis.toml",
                                         paths={"notes": list(small_run.config.paths.notes), "seed_themes": "",
                                                "personas": ""}),
                             embedder=e5, progress=False)
    agreement = evaluate.assignment_agreement(small_run.assignments, inductive.assignments)
    assert agreement["n"] == int(small_run.assignments["status"].ne("empty").sum())
    assert -0.5 < agreement["ari"] < 1.0
    table = evaluate.assignment_crosstab(small_run.assignments, inductive.assignments)
    assert table.to_numpy().sum() == agreement["n"]


# --------------------------------------------------------------------------- stability


def test_stability_across_seeds_is_deterministic_and_compares_every_pair(topic_vectors, topic_groups):
    first = evaluate.stability_across_seeds(_model(), topic_vectors, groups=topic_groups, n_runs=3, random_state=7)
    second = evaluate.stability_across_seeds(_model(), topic_vectors, groups=topic_groups, n_runs=3, random_state=7)
    pd.testing.assert_frame_equal(first, second)
    assert list(zip(first["run_a"], first["run_b"])) == [(1, 2), (1, 3), (2, 3)]
    assert list(zip(first["random_state_a"], first["random_state_b"])) == [(7, 8), (7, 9), (8, 9)]
    assert first["ari"].between(-1, 1).all()


def test_run_one_is_the_configured_fit(topic_vectors, topic_groups):
    """Run 1 uses the given random_state itself, so the analysis being checked is among the runs."""
    table = evaluate.stability_across_seeds(_model(n_themes=4), topic_vectors, groups=topic_groups, n_runs=2,
                                            random_state=3)
    configured = _model(n_themes=4, random_state=3).fit(topic_vectors, groups=topic_groups)
    other = _model(n_themes=4, random_state=4).fit(topic_vectors, groups=topic_groups)
    from sklearn.metrics import adjusted_rand_score

    assert table.loc[0, "ari"] == pytest.approx(adjusted_rand_score(configured.labels_, other.labels_), abs=1e-4)


def test_four_clear_topics_are_stable_across_seeds(topic_vectors, topic_groups):
    table = evaluate.stability_across_seeds(_model(n_themes=4), topic_vectors, groups=topic_groups, n_runs=3)
    assert table["ari"].min() > 0.8


def test_stability_needs_two_runs(topic_vectors):
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.stability_across_seeds(_model(), topic_vectors, n_runs=1)


def test_bootstrap_is_deterministic_and_draws_with_replacement(topic_vectors, topic_groups):
    first = evaluate.bootstrap_stability(_model(), topic_vectors, groups=topic_groups, n_resamples=2, random_state=1)
    second = evaluate.bootstrap_stability(_model(), topic_vectors, groups=topic_groups, n_resamples=2, random_state=1)
    pd.testing.assert_frame_equal(first, second)
    assert first["resample"].tolist() == [1, 2]
    assert (first["distinct_notes"] < len(topic_vectors)).all()  # with replacement: some notes drawn twice
    assert first["distinct_notes"].nunique() > 1 or first["ari"].nunique() > 1


def test_bootstrap_separates_clear_topics_from_noise(topic_vectors, topic_groups):
    clear = evaluate.bootstrap_stability(_model(n_themes=4), topic_vectors, groups=topic_groups, n_resamples=3)
    noise = np.random.default_rng(0).normal(size=topic_vectors.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    random = evaluate.bootstrap_stability(_model(n_themes=4), noise, groups=topic_groups, n_resamples=3)
    # 40 notes, ~25 distinct per resample: even clear topics lose some notes to their neighbours.
    assert clear["ari"].mean() > 0.5
    assert random["ari"].mean() < 0.3 and random["ari"].mean() < clear["ari"].mean() - 0.3


def test_bootstrap_with_given_reference_equals_fitted_reference(topic_vectors, topic_groups):
    reference = _model().fit(topic_vectors, groups=topic_groups).labels_
    given = evaluate.bootstrap_stability(_model(), topic_vectors, groups=topic_groups, n_resamples=1,
                                         reference_labels=reference)
    fitted = evaluate.bootstrap_stability(_model(), topic_vectors, groups=topic_groups, n_resamples=1)
    pd.testing.assert_frame_equal(given, fitted)
    with pytest.raises(ValueError, match="reference_labels has 3 labels"):
        evaluate.bootstrap_stability(_model(), topic_vectors, reference_labels=reference[:3])


def test_refitting_a_guided_run_reproduces_it(small_run, e5):
    from analysis import pipeline
    from analysis.config import load_config

    # Without overrides: the project's pins teach the model (analysis.learn), so the run's labels
    # are no longer the fit's own, and the fit is what theme_fit_inputs reproduces.
    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")],
                                                        "overrides": ""})
    small_run = pipeline.run(config, embedder=e5, progress=False)
    inputs = evaluate.theme_fit_inputs(small_run, e5)
    assert inputs["seed_ids"] == [seed.id for seed in small_run.seeds]
    assert len(inputs["groups"]) == len(small_run.vectors)
    assert all(view.shape == (len(small_run.vectors), len(small_run.seeds)) for view in inputs["seed_lexical"])
    model = pipeline.theme_model_from_config(small_run.config)
    refit = model.fit(small_run.vectors, **inputs)
    assert refit.labels_.tolist() == small_run.model.labels_.tolist()
    table = evaluate.bootstrap_stability(model, small_run.vectors, **inputs, n_resamples=2,
                                         reference_labels=small_run.model.labels_)
    assert table["ari"].between(-1, 1).all()
    assert evaluate.theme_fit_inputs(small_run)["seed_ids"] == inputs["seed_ids"]  # kept by the run
    import dataclasses

    with pytest.raises(ValueError, match="pass embedder"):
        evaluate.theme_fit_inputs(dataclasses.replace(small_run, fit_inputs={}))


# --------------------------------------------------------------------------- personas and what is measured


def test_persona_ids_compare_ignoring_case_on_both_sides():
    gold = ["Åse", "øystein", "none", "ØYSTEIN", "A\u030ase"]  # the last: Åse written decomposed (NFD)
    predicted = ["åse", "Øystein", "none", "Øystein", "Åse"]
    metrics = evaluate.persona_metrics(gold, predicted)
    assert metrics == {"persona_accuracy": 1.0, "persona_macro_f1": 1.0}
    wrong = evaluate.persona_metrics(["Åse", "Øystein"], ["Øystein", "Åse"])
    assert wrong["persona_accuracy"] == 0.0


def test_capitalised_persona_ids_score_as_their_links(tmp_path, e5):
    from analysis import pipeline
    from analysis.config import load_config

    root = Path(__file__).resolve().parents[1]
    personas = (root / "data" / "raw" / "personas.yml").read_text(encoding="utf-8")
    for old, new in (("roald", "Roald"), ("edel", "Edel"), ("knut", "Knut"), ("elias", "Elias")):
        personas = personas.replace(f"id: {old}\n", f"id: {new}\n")
    (tmp_path / "personas.yml").write_text(personas, encoding="utf-8")
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")],
                                                        "overrides": ""})
    lower = pipeline.run(config, embedder=e5, progress=False)
    upper = pipeline.run(config, embedder=e5, progress=False, personas_path=tmp_path / "personas.yml")
    assert set(upper.assignments["persona_id"]) - {"none"} <= {"Roald", "Edel", "Knut", "Elias"}
    assert upper.evaluation["metrics"]["persona_macro_f1"] == lower.evaluation["metrics"]["persona_macro_f1"]
    assert upper.evaluation["metrics"]["persona_accuracy"] > 0.5


def test_a_run_and_evaluate_run_measure_the_same_thing(tmp_path, e5):
    """Overrides change the run's outputs but not its evaluation.json, which equals evaluate_run's."""
    from analysis import pipeline
    from analysis.config import load_config

    root = Path(__file__).resolve().parents[1]
    notes = pd.read_csv(root / "tests" / "fixtures" / "e2e" / "notes.csv", dtype=str)
    moved = notes["note_id"].iloc[:6].tolist()
    (tmp_path / "overrides.yml").write_text(
        "exclude:\n" + "".join(f"  - {{note: {note_id}, reason: test}}\n" for note_id in moved), encoding="utf-8")
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")],
                                                        "overrides": str(tmp_path / "overrides.yml")})
    result = pipeline.run(config, embedder=e5, progress=False)
    assert (result.assignments.set_index("note_id").loc[moved, "status"] == "excluded").all()
    report = evaluate.evaluate_run(config, gold_column="gold_theme", gold_persona_column="gold_persona", embedder=e5)
    assert result.evaluation["metrics"] == report.metrics
    measured = result.evaluation["measured"]
    assert measured == report.measured
    assert measured["seed_themes"] == "data/raw/seed_themes.yml" and measured["seed_themes_from"] == "config"
    assert measured["personas"] == "data/raw/personas.yml" and measured["personas_from"] == "config"
    assert measured["overrides"].startswith("not applied")
    assert result.evaluation["overrides_in_outputs"] == len(moved)
    named = evaluate.evaluate_run(config, embedder=e5, seed_themes_path=root / "data" / "raw" / "seed_themes.yml")
    assert named.measured["seed_themes_from"] == "named" and named.metrics["accuracy"] == report.metrics["accuracy"]
