"""Agreement measures: pure functions of gold labels and a run's assignments (no model, no run).

``gold_agreement`` is what ``analysis evaluate``, ``evaluate.evaluate_run`` and the
``evaluation.json`` of a run report (see ``analysis.evaluate`` for what is measured and how);
``matched_themes`` is the one Hungarian matching of gold themes to predicted ones;
``assignment_agreement`` compares two runs over the same notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.schema import GOLD_PREFIX, STATUS_ASSIGNED, STATUS_OK, STATUS_PINNED
from analysis.text import normalise


def _sklearn_metrics():
    # scikit-learn's metrics pull in its validation machinery (~0.3 s); only an evaluation needs them.
    from sklearn import metrics

    return metrics


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


def matched_themes(gold: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The one-to-one matching of gold themes to predicted ones with the largest total overlap
    (Hungarian): (gold values, predicted values, overlap counts, gold row -> predicted column)."""
    from scipy.optimize import linear_sum_assignment

    gold_values, predicted_values = np.unique(gold), np.unique(predicted)
    overlap = np.array([[np.sum((gold == g) & (predicted == p)) for p in predicted_values]
                        for g in gold_values])
    rows, cols = linear_sum_assignment(-overlap)
    return gold_values, predicted_values, overlap, dict(zip(rows, cols))


def per_theme_recall(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Recall of each gold theme after a one-to-one optimal matching of themes to clusters."""
    gold_values, _, overlap, matched = matched_themes(gold, predicted)
    return {str(g): _round(overlap[i, matched[i]] / max(1, (gold == g).sum()) if i in matched else 0.0)
            for i, g in enumerate(gold_values)}


def cluster_metrics(gold, predicted, langs=None) -> dict:
    gold, predicted = np.asarray(gold, dtype=str), np.asarray(predicted, dtype=str)
    metrics = {
        "n": int(len(gold)),
        "n_themes": int(len(set(predicted) - {"", UNASSIGNED})),
        "ari": _round(_sklearn_metrics().adjusted_rand_score(gold, predicted)),
        "ami": _round(_sklearn_metrics().adjusted_mutual_info_score(gold, predicted)),
        "nmi": _round(_sklearn_metrics().normalized_mutual_info_score(gold, predicted)),
        "nmi_lang": _round(_sklearn_metrics().normalized_mutual_info_score(langs, predicted)) if langs is not None else None,
        "per_theme_recall": per_theme_recall(gold, predicted),
    }
    return metrics


def guided_metrics(gold, predicted) -> dict:
    gold = np.where(np.asarray(gold, dtype=str) == OFF_TOPIC_GOLD, UNASSIGNED, np.asarray(gold, dtype=str))
    predicted = np.asarray(predicted, dtype=str)
    return {
        "accuracy": _round(_sklearn_metrics().accuracy_score(gold, predicted)),
        "macro_f1": _round(_sklearn_metrics().f1_score(gold, predicted, average="macro", zero_division=0)),
        "kappa": _round(_sklearn_metrics().cohen_kappa_score(gold, predicted)),
    }


def persona_id_key(value) -> str:
    """How persona ids are compared: NFC, trimmed, case-insensitive (see the module docstring)."""
    return normalise(str(value)).casefold()


def persona_metrics(gold, predicted) -> dict:
    """Accuracy and macro-F1 of persona ids, compared with ``persona_id_key`` on both sides."""
    gold = np.asarray([persona_id_key(g) for g in gold], dtype=str)
    predicted = np.asarray([persona_id_key(p) for p in predicted], dtype=str)
    return {
        "persona_accuracy": _round(_sklearn_metrics().accuracy_score(gold, predicted)),
        "persona_macro_f1": _round(_sklearn_metrics().f1_score(gold, predicted, average="macro", zero_division=0)),
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
    gold_values, predicted_values, overlap, partner = matched_themes(gold, predicted)
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
            "ari": _round(_sklearn_metrics().adjusted_rand_score(first, second)),
            "ami": _round(_sklearn_metrics().adjusted_mutual_info_score(first, second)),
            "nmi": _round(_sklearn_metrics().normalized_mutual_info_score(first, second))}
