"""Agreement with gold labels: the project measures itself.

Gold columns are removed from the notes before the model sees them. Inductive agreement is
measured with ARI, AMI and NMI (unassigned notes form one group of their own); guided
agreement, when seed themes are given, with accuracy, macro-F1 and Cohen's kappa, where a
note the model left without a seed theme counts as ``unassigned`` and the gold value
``other`` means the same thing. Gold labels absent from the seed file can never be matched,
so they count as errors.

Persona ids are compared ignoring case on both sides (after Unicode NFC and trimming), so a
gold ``Åse`` matches the persona ``åse`` and ``ØYSTEIN`` matches ``Øystein``; the persona file
refuses two ids that differ only in case.

Evaluation means one thing everywhere (``analysis evaluate``, ``evaluate_run`` in the
notebooks and the ``evaluation.json`` a run writes): the model as it is, without the analyst's
overrides, with the seed file and persona file named for the run or, when none is named, the
config's. ``EvaluationReport.measured`` and ``evaluation.json`` say which files those were.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from analysis.config import Config
from analysis.load import load_notes
from analysis.metrics import (  # noqa: F401 (the agreement measures, here for evaluate's callers)
    UNASSIGNED, OFF_TOPIC_GOLD, GUIDED_STATUSES, METRIC_KEYS, EvaluationError, OVERRIDES_NOT_APPLIED,
    EvaluationReport, measured_inputs, measured_lines, per_theme_recall, cluster_metrics, guided_metrics,
    persona_id_key, persona_metrics, gold_agreement, recall_table, assignment_crosstab, assignment_agreement,
    matched_themes, _gold_series, _round, _sklearn_metrics)
from analysis.schema import GOLD_PREFIX, STATUS_OK


def evaluate_run(config: Config, gold_column: str = "gold_theme", notes_paths=None,
                 gold_persona_column: str | None = None, embedder=None, seed_themes_path=None,
                 personas_path=None, overrides_path=None) -> EvaluationReport:
    """Run the model on the notes with their gold columns removed and compare it with them.

    The model is measured without overrides, with ``seed_themes_path`` and ``personas_path``
    when given, else the config's (set them to "" in the config for none); the report's
    ``measured`` says which. With ``overrides_path``, the model first learns from that file
    (``analysis.learn``) and only the notes it does not pin or exclude are scored.
    """
    from analysis import pipeline

    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, overrides=""))
    notes = load_notes(pipeline.notes_paths_from(config, notes_paths), root=config.root,
                       columns=config.columns.mapping())
    _gold_series(notes, gold_column, "gold themes")
    if gold_persona_column:
        _gold_series(notes, gold_persona_column, "gold personas")
    blind = notes.drop(columns=[c for c in notes.columns if c.startswith(GOLD_PREFIX) or c in
                                {gold_column, gold_persona_column}])
    result = pipeline.run(config, notes=blind, notes_paths=notes_paths, embedder=embedder, progress=False,
                          seed_themes_path=seed_themes_path, personas_path=personas_path,
                          overrides_path=overrides_path)
    decided = decided_notes(overrides_path) if overrides_path else set()
    scored = notes[~notes["note_id"].astype(str).isin(decided)].reset_index(drop=True)
    report = gold_agreement(scored, result.assignments, gold_column, gold_persona_column,
                            guided=bool(result.seeds), personas=result.persona_links is not None)
    report.measured = measured_inputs(result.config.paths.seed_themes, "named" if seed_themes_path else "config",
                                      result.config.paths.personas, "named" if personas_path else "config")
    if overrides_path:
        report.measured["overrides"] = (f"learnt from {overrides_path}; scored on the {len(scored)} notes it "
                                        f"does not pin or exclude ({len(notes) - len(scored)} left out)")
    return report


def decided_notes(overrides_path) -> set[str]:
    """The note ids an overrides file pins or excludes: the analyst's answers, never scored."""
    from analysis.overrides import load_overrides

    overrides = load_overrides(overrides_path)
    return {str(entry["note"]) for entry in (*overrides.pin, *overrides.exclude)}


# --------------------------------------------------------------------------- stability


def theme_fit_inputs(result, embedder=None) -> dict:
    """What a run's ThemeModel was fitted on besides the vectors.

    ``groups`` (the ``centre_by`` columns), ``seed_vectors``, ``seed_ids`` and ``seed_lexical``
    (the notes' word and character overlap with each seed theme), as ``pipeline.run`` passes them.

    Pass the result to ``stability_across_seeds``/``bootstrap_stability`` as
    ``**theme_fit_inputs(result, embedder)`` with ``result.vectors``. A result of ``pipeline.run``
    keeps them (``RunResult.fit_inputs``); for one without (built by hand), a run with seed themes
    needs the embedder (``pipeline.build_embedder(config)``) to rebuild the seed prototypes.
    """
    from analysis.lexical import seed_lexical_scores
    from analysis.themes import seed_prototypes

    if result.fit_inputs:  # kept by pipeline.run: exactly what the model saw
        return dict(result.fit_inputs)
    analysable = result.notes[result.notes["status"].eq(STATUS_OK)]
    columns = [c for c in (result.model.centre_by or ()) if c in result.notes.columns]
    groups = analysable[columns].reset_index(drop=True)
    if not result.seeds:
        return {"groups": groups, "seed_vectors": None, "seed_ids": None, "seed_lexical": None}
    if embedder is None:
        raise ValueError("This run used seed themes; pass embedder=pipeline.build_embedder(config) so that "
                         "their prototypes can be rebuilt.")
    return {"groups": groups,
            "seed_vectors": seed_prototypes(result.seeds, embedder, result.config.themes.seed_text),
            "seed_ids": [seed.id for seed in result.seeds],
            "seed_lexical": seed_lexical_scores(analysable["text"].tolist(), analysable["lang"].tolist(),
                                                result.seeds)}


def _fitted_labels(model, vectors, groups, seed_vectors, seed_ids, seed_lexical=None,
                   random_state=None) -> np.ndarray:
    from sklearn.base import clone

    fitted = clone(model)
    if random_state is not None:
        fitted.set_params(random_state=random_state)
    fitted.fit(vectors, groups=groups, seed_vectors=seed_vectors, seed_ids=seed_ids, seed_lexical=seed_lexical)
    labels = np.asarray(fitted.labels_, dtype=object).astype(str)
    return np.where(labels == "", UNASSIGNED, labels)


def _run_states(random_state: int, n: int) -> list[int]:
    """The configured state and the next ones: run 1 is the configured analysis itself."""
    return [int(random_state) + i for i in range(n)]


def _n_themes(labels: np.ndarray) -> int:
    return len(set(labels.tolist()) - {UNASSIGNED})


def stability_across_seeds(model, vectors, *, groups: pd.DataFrame | None = None, seed_vectors=None,
                           seed_ids=None, seed_lexical=None, n_runs: int = 3, random_state=0) -> pd.DataFrame:
    """Refit ``model`` with ``n_runs`` random states and compare every pair of runs (ARI).

    The runs use ``random_state``, ``random_state + 1``, …, so run 1 is the configured analysis
    and the table is the same on every call. One row per pair: ``run_a``, ``run_b``, their random
    states and numbers of themes, and ``ari`` (1.0: the same partition; about 0: no more alike
    than chance). Unassigned notes form one group.
    """
    if n_runs < 2:
        raise ValueError(f"n_runs must be at least 2 to compare runs, got {n_runs}.")
    vectors = np.asarray(vectors)
    states = _run_states(random_state, n_runs)
    labels = [_fitted_labels(model, vectors, groups, seed_vectors, seed_ids, seed_lexical, state)
              for state in states]
    rows = [{"run_a": i + 1, "run_b": j + 1, "random_state_a": states[i], "random_state_b": states[j],
             "themes_a": _n_themes(labels[i]), "themes_b": _n_themes(labels[j]),
             "ari": _round(_sklearn_metrics().adjusted_rand_score(labels[i], labels[j]))}
            for i in range(n_runs) for j in range(i + 1, n_runs)]
    return pd.DataFrame(rows)


def bootstrap_stability(model, vectors, *, groups: pd.DataFrame | None = None, seed_vectors=None,
                        seed_ids=None, seed_lexical=None, n_resamples: int = 3, random_state=0,
                        reference_labels=None) -> pd.DataFrame:
    """Refit ``model`` on bootstrap resamples of the notes and compare each with the full fit (ARI).

    Each resample draws as many notes as there are, with replacement (so about 63 % distinct
    notes), with indices drawn from a generator seeded with ``random_state``; the model keeps its
    own random state, so
    only the data vary. The comparison is over the distinct notes drawn, against
    ``reference_labels`` (the full fit's ``labels_``; fitted here when not given). One row per
    resample: ``resample``, ``distinct_notes``, ``themes``, ``ari``. Per-note inputs (``groups``,
    ``seed_lexical``) are resampled with the vectors.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    vectors = np.asarray(vectors)
    if reference_labels is None:
        reference = _fitted_labels(model, vectors, groups, seed_vectors, seed_ids, seed_lexical)
    else:
        reference = np.asarray(reference_labels, dtype=object).astype(str)
        reference = np.where(reference == "", UNASSIGNED, reference)
    if len(reference) != len(vectors):
        raise ValueError(f"reference_labels has {len(reference)} labels for {len(vectors)} notes; pass the "
                         "labels_ of a model fitted on exactly these vectors.")
    generator = np.random.default_rng(random_state)
    rows = []
    for resample in range(1, n_resamples + 1):
        drawn = generator.integers(0, len(vectors), size=len(vectors))
        sample_groups = groups.iloc[drawn].reset_index(drop=True) if groups is not None else None
        sample_lexical = [np.asarray(view)[drawn] for view in seed_lexical] if seed_lexical is not None else None
        labels = _fitted_labels(model, vectors[drawn], sample_groups, seed_vectors, seed_ids, sample_lexical)
        distinct, first = np.unique(drawn, return_index=True)
        rows.append({"resample": resample, "distinct_notes": int(len(distinct)), "themes": _n_themes(labels),
                     "ari": _round(_sklearn_metrics().adjusted_rand_score(reference[distinct], labels[first]))})
    return pd.DataFrame(rows)
