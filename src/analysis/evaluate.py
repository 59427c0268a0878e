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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (accuracy_score, adjusted_mutual_info_score, adjusted_rand_score,
                             cohen_kappa_score, f1_score, normalized_mutual_info_score)

from analysis.config import Config
from analysis.load import load_notes
from analysis.schema import GOLD_PREFIX, STATUS_ASSIGNED, STATUS_OK, STATUS_PINNED
from analysis.text import normalise

UNASSIGNED = "unassigned"
OFF_TOPIC_GOLD = "other"
#: Statuses that carry a seed theme for the guided metrics (an analyst's pin counts as given).
GUIDED_STATUSES = (STATUS_ASSIGNED, STATUS_PINNED)
METRIC_KEYS = ("n", "n_themes", "ari", "ami", "nmi", "nmi_lang", "per_theme_recall", "accuracy",
               "macro_f1", "kappa", "persona_accuracy", "persona_macro_f1")


class EvaluationError(ValueError):
    """The gold column is missing or empty."""


#: What an evaluation never includes: the analyst's decisions are not the model's answers.
OVERRIDES_NOT_APPLIED = "not applied: the model is measured without the analyst's overrides"


@dataclass
class EvaluationReport:
    metrics: dict
    table: pd.DataFrame  # one row per evaluated note: gold, predicted, lang, …
    measured: dict = field(default_factory=dict)  # which seed file, persona file and overrides

    def record(self, gold_column: str, gold_persona_column: str | None) -> dict:
        """The evaluation as ``evaluation.json`` and ``analysis evaluate --json`` write it."""
        return {"gold_column": gold_column, "gold_persona_column": gold_persona_column,
                "measured": self.measured, "metrics": self.metrics}


def measured_inputs(seed_themes: str | None, seed_source: str, personas: str | None, persona_source: str) -> dict:
    """What was measured: each file with where it came from ("named": passed for this run;
    "config": the config's [paths]; "none": no file), and that overrides were left out."""
    return {"seed_themes": seed_themes or None, "seed_themes_from": seed_source if seed_themes else "none",
            "personas": personas or None, "personas_from": persona_source if personas else "none",
            "overrides": OVERRIDES_NOT_APPLIED}


def measured_lines(measured: dict) -> list[str]:
    """The measured inputs in words, for the command line and notebooks."""
    words = {"named": "named for this evaluation", "config": "from the config's [paths]"}
    lines = []
    for key, label in (("seed_themes", "seed themes"), ("personas", "personas")):
        value = measured.get(key)
        lines.append(f"{label}: {value} ({words.get(measured.get(f'{key}_from'), '')})" if value
                     else f"{label}: none")
    lines.append(f"overrides: {measured.get('overrides', OVERRIDES_NOT_APPLIED)}")
    return lines


def _round(value) -> float | None:
    return None if value is None else round(float(value), 4)


def per_theme_recall(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Recall of each gold theme after a one-to-one optimal matching of themes to clusters."""
    gold_values, predicted_values = np.unique(gold), np.unique(predicted)
    overlap = np.array([[np.sum((gold == g) & (predicted == p)) for p in predicted_values]
                        for g in gold_values])
    rows, cols = linear_sum_assignment(-overlap)
    matched = dict(zip(rows, cols))
    return {str(g): _round(overlap[i, matched[i]] / max(1, (gold == g).sum()) if i in matched else 0.0)
            for i, g in enumerate(gold_values)}


def cluster_metrics(gold, predicted, langs=None) -> dict:
    gold, predicted = np.asarray(gold, dtype=str), np.asarray(predicted, dtype=str)
    metrics = {
        "n": int(len(gold)),
        "n_themes": int(len(set(predicted) - {"", UNASSIGNED})),
        "ari": _round(adjusted_rand_score(gold, predicted)),
        "ami": _round(adjusted_mutual_info_score(gold, predicted)),
        "nmi": _round(normalized_mutual_info_score(gold, predicted)),
        "nmi_lang": _round(normalized_mutual_info_score(langs, predicted)) if langs is not None else None,
        "per_theme_recall": per_theme_recall(gold, predicted),
    }
    return metrics


def guided_metrics(gold, predicted) -> dict:
    gold = np.where(np.asarray(gold, dtype=str) == OFF_TOPIC_GOLD, UNASSIGNED, np.asarray(gold, dtype=str))
    predicted = np.asarray(predicted, dtype=str)
    return {
        "accuracy": _round(accuracy_score(gold, predicted)),
        "macro_f1": _round(f1_score(gold, predicted, average="macro", zero_division=0)),
        "kappa": _round(cohen_kappa_score(gold, predicted)),
    }


def persona_id_key(value) -> str:
    """How persona ids are compared: NFC, trimmed, case-insensitive (see the module docstring)."""
    return normalise(str(value)).casefold()


def persona_metrics(gold, predicted) -> dict:
    """Accuracy and macro-F1 of persona ids, compared with ``persona_id_key`` on both sides."""
    gold = np.asarray([persona_id_key(g) for g in gold], dtype=str)
    predicted = np.asarray([persona_id_key(p) for p in predicted], dtype=str)
    return {
        "persona_accuracy": _round(accuracy_score(gold, predicted)),
        "persona_macro_f1": _round(f1_score(gold, predicted, average="macro", zero_division=0)),
    }


def _gold_series(notes: pd.DataFrame, column: str, label: str) -> pd.Series:
    if column not in notes.columns:
        gold_like = [c for c in notes.columns if c.startswith(GOLD_PREFIX)]
        raise EvaluationError(f"The notes have no column {column!r} for {label}. Columns that look like "
                              f"gold labels: {gold_like or 'none'}. Pass the right name with --gold.")
    values = notes[column].fillna("").astype(str).str.strip()
    if not values.ne("").any():
        raise EvaluationError(f"Column {column!r} is empty in every row; nothing to evaluate against.")
    return values


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


def gold_agreement(notes: pd.DataFrame, assignments: pd.DataFrame, gold_column: str = "gold_theme",
                   gold_persona_column: str | None = None, guided: bool = True,
                   personas: bool = True) -> EvaluationReport:
    """Compare a run's assignments with the gold columns of its notes."""
    gold = _gold_series(notes, gold_column, "gold themes")
    gold_persona = _gold_series(notes, gold_persona_column, "gold personas") if gold_persona_column else None
    assignments = assignments.set_index("note_id").loc[notes["note_id"]]
    evaluated = (gold.ne("") & notes["status"].eq(STATUS_OK)).to_numpy()
    theme = assignments["theme_id"].to_numpy(dtype=object)
    predicted = np.where(theme == "", UNASSIGNED, theme)[evaluated]
    langs = notes["lang"].to_numpy()[evaluated] if "lang" in notes.columns else None
    metrics = dict.fromkeys(METRIC_KEYS)
    metrics.update(cluster_metrics(gold.to_numpy()[evaluated], predicted, langs))
    if guided:
        guided_labels = np.where(np.isin(assignments["status"].to_numpy(), GUIDED_STATUSES), theme, UNASSIGNED)
        metrics.update(guided_metrics(gold.to_numpy()[evaluated], guided_labels[evaluated]))
    if gold_persona is not None and personas:
        has_persona = gold_persona.ne("").to_numpy() & evaluated
        metrics.update(persona_metrics(gold_persona.to_numpy()[has_persona],
                                       assignments["persona_id"].to_numpy()[has_persona]))
    table = pd.DataFrame({"note_id": notes["note_id"].to_numpy()[evaluated],
                          "gold": gold.to_numpy()[evaluated], "predicted": predicted})
    return EvaluationReport(metrics=metrics, table=table)


# --------------------------------------------------------------------------- per-theme recall, as a table


def recall_table(report: EvaluationReport) -> pd.DataFrame:
    """Per gold theme: its notes, the predicted theme matched to it one-to-one, and the recall.

    The matching is the one ``per_theme_recall`` uses (Hungarian, maximal overlap); a gold
    theme left without a partner (more gold themes than predicted ones) has ``matched_theme`` "".
    """
    gold = report.table["gold"].to_numpy(dtype=str)
    predicted = report.table["predicted"].to_numpy(dtype=str)
    gold_values, predicted_values = np.unique(gold), np.unique(predicted)
    overlap = np.array([[np.sum((gold == g) & (predicted == p)) for p in predicted_values]
                        for g in gold_values])
    rows, cols = linear_sum_assignment(-overlap)
    partner = dict(zip(rows, cols))
    table = pd.DataFrame({
        "gold_theme": gold_values,
        "notes": [int((gold == g).sum()) for g in gold_values],
        "matched_theme": [predicted_values[partner[i]] if i in partner else "" for i in range(len(gold_values))],
        "matched_notes": [int(overlap[i, partner[i]]) if i in partner else 0 for i in range(len(gold_values))],
    })
    table["recall"] = (table["matched_notes"] / table["notes"].clip(lower=1)).round(4)
    return table.sort_values(["recall", "gold_theme"], ascending=[False, True]).reset_index(drop=True)


# --------------------------------------------------------------------------- comparing two runs


def _themes_by_note(assignments: pd.DataFrame) -> pd.Series:
    """Theme id per note id ("unassigned" for none); empty notes, which no run can theme, are left out."""
    has_text = assignments["status"].ne("empty")
    themes = assignments.loc[has_text, "theme_id"].fillna("").astype(str)
    themes = themes.where(themes.ne(""), UNASSIGNED)
    return pd.Series(themes.to_numpy(), index=assignments.loc[has_text, "note_id"].astype(str).to_numpy())


def _aligned(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    first, second = _themes_by_note(a), _themes_by_note(b)
    common = first.index.intersection(second.index, sort=False).sort_values()
    if len(common) == 0:
        raise EvaluationError("The two assignment tables share no note ids; compare runs over the same notes.")
    return first.loc[common], second.loc[common]


def assignment_crosstab(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Notes per theme of run ``a`` (rows) and of run ``b`` (columns), over the notes both themed or left."""
    first, second = _aligned(a, b)
    return pd.crosstab(first.rename(names[0]), second.rename(names[1]))


def assignment_agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """How alike two runs' partitions of the same notes are: ``n``, ``ari``, ``ami``, ``nmi``.

    Theme ids need not match (a guided and an inductive run name themes differently); the
    scores compare the groupings. ``unassigned`` counts as one group.
    """
    first, second = _aligned(a, b)
    return {"n": int(len(first)),
            "ari": _round(adjusted_rand_score(first, second)),
            "ami": _round(adjusted_mutual_info_score(first, second)),
            "nmi": _round(normalized_mutual_info_score(first, second))}


# --------------------------------------------------------------------------- stability


def theme_fit_inputs(result, embedder=None) -> dict:
    """What a run's ThemeModel was fitted on besides the vectors.

    ``groups`` (the ``centre_by`` columns), ``seed_vectors``, ``seed_ids`` and ``seed_lexical``
    (the notes' word and character overlap with each seed theme), as ``pipeline.run`` passes them.

    Pass the result to ``stability_across_seeds``/``bootstrap_stability`` as
    ``**theme_fit_inputs(result, embedder)`` with ``result.vectors``. A run with seed themes
    needs the embedder (``pipeline.build_embedder(config)``) to rebuild the seed prototypes.
    """
    from analysis.explore import centre_groups
    from analysis.lexical import seed_lexical_scores
    from analysis.themes import seed_prototypes

    if not result.seeds:
        return {"groups": centre_groups(result), "seed_vectors": None, "seed_ids": None, "seed_lexical": None}
    if embedder is None:
        raise ValueError("This run used seed themes; pass embedder=pipeline.build_embedder(config) so that "
                         "their prototypes can be rebuilt.")
    analysable = result.notes[result.notes["status"].eq(STATUS_OK)]
    return {"groups": centre_groups(result),
            "seed_vectors": seed_prototypes(result.seeds, embedder),
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
             "ari": _round(adjusted_rand_score(labels[i], labels[j]))}
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
                     "ari": _round(adjusted_rand_score(reference[distinct], labels[first]))})
    return pd.DataFrame(rows)
