"""Agreement with gold labels: the project measures itself.

Gold columns are removed from the notes before the model sees them. Inductive agreement is
measured with ARI, AMI and NMI (unassigned notes form one group of their own); guided
agreement, when seed themes are given, with accuracy, macro-F1 and Cohen's kappa, where a
note the model left without a seed theme counts as ``unassigned`` and the gold value
``other`` means the same thing. Gold labels absent from the seed file can never be matched,
so they count as errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (accuracy_score, adjusted_mutual_info_score, adjusted_rand_score,
                             cohen_kappa_score, f1_score, normalized_mutual_info_score)

from analysis.config import Config
from analysis.load import load_notes
from analysis.schema import GOLD_PREFIX, STATUS_ASSIGNED, STATUS_OK, STATUS_PINNED

UNASSIGNED = "unassigned"
OFF_TOPIC_GOLD = "other"
#: Statuses that carry a seed theme for the guided metrics (an analyst's pin counts as given).
GUIDED_STATUSES = (STATUS_ASSIGNED, STATUS_PINNED)
METRIC_KEYS = ("n", "n_themes", "ari", "ami", "nmi", "nmi_lang", "per_theme_recall", "accuracy",
               "macro_f1", "kappa", "persona_accuracy", "persona_macro_f1")


class EvaluationError(ValueError):
    """The gold column is missing or empty."""


@dataclass
class EvaluationReport:
    metrics: dict
    table: pd.DataFrame  # one row per evaluated note: gold, predicted, lang, …


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


def persona_metrics(gold, predicted) -> dict:
    gold = np.asarray([str(g).strip().lower() for g in gold])
    predicted = np.asarray(predicted, dtype=str)
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
                 gold_persona_column: str | None = None, embedder=None) -> EvaluationReport:
    from analysis import pipeline

    # The model is measured, not the analyst: overrides (pins, merges) stay out of evaluation.
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, overrides=""))
    notes = load_notes(pipeline.notes_paths_from(config, notes_paths), root=config.root)
    _gold_series(notes, gold_column, "gold themes")
    if gold_persona_column:
        _gold_series(notes, gold_persona_column, "gold personas")
    blind = notes.drop(columns=[c for c in notes.columns if c.startswith(GOLD_PREFIX) or c in
                                {gold_column, gold_persona_column}])
    result = pipeline.run(config, notes=blind, embedder=embedder, progress=False)
    return gold_agreement(notes, result.assignments, gold_column, gold_persona_column,
                          guided=bool(result.seeds), personas=result.persona_links is not None)


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
