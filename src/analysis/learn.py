"""Learning from the analyst: confirmed notes and seed examples re-score every other note.

Embeddings alone cannot separate the themes an analyst cares about; the analyst's own
decisions can. A *confirmed note* is a pin in the overrides file (``pin: {note, theme}``, the
theme may be one no run has yet: the pin creates it) or an exclusion (``exclude``: the note is
off-topic, and notes like it are left without a theme). The seed file's ``examples:`` are
labelled examples too.

``ConfirmedNotesLearner`` is transductive: it scores every note of the run against every theme
from three views, in log-probability units, and sums them:

* a logistic regression on the centred vectors, trained on the confirmed notes, the seed
  examples and one anchor per theme (its seed description or fitted prototype);
* the ThemeModel's own scores (centred cosine plus the seeds' lexical evidence; for a theme
  only confirmed notes define, the cosine to their centroid), standardised and weighted by
  ``prior_weight``: what the model knew before any decision;
* label spreading over the centred notes' cosine kNN graph, anchored on the confirmed notes
  (clamped) and started from the first two views, so a decision reaches the notes around it.

Defaults were chosen on the review-loop benchmark by the worst of the three labelled corpora
(``benchmarks/review_loop.py``, benchmarks/README.md "Review loop").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix, diags
from sklearn.base import BaseEstimator, clone
from threadpoolctl import threadpool_limits

from analysis.schema import STATUS_ASSIGNED, STATUS_NEW_THEME, STATUS_UNASSIGNED
from analysis.themes import unit_length

#: The class of the notes the analyst excluded: a note the learner puts here gets no theme.
EXCLUDED = "(excluded)"


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class ConfirmedNotesLearner(BaseEstimator):
    """Re-score every note from the analyst's confirmed notes (see the module docstring).

    ``fit(X, prior, prior_themes, confirmed_rows, confirmed_themes, examples=None,
    example_themes=None, anchors=None)``:
      * ``X``: (n, d) centred unit vectors of the run's notes (``ThemeModel.centre``);
      * ``prior``: (n, t) the ThemeModel's score of each note for each of ``prior_themes``;
      * ``confirmed_rows`` / ``confirmed_themes``: rows of ``X`` the analyst decided and their
        theme (``EXCLUDED`` for an exclusion); a theme not in ``prior_themes`` becomes a class;
      * ``examples`` / ``example_themes``: centred vectors of the seed examples and their theme;
      * ``anchors``: (t, d) one centred vector per prior theme (seed description or prototype).

    Learned: ``classes_`` (prior themes, then new ones sorted, then ``EXCLUDED`` if used),
    ``log_proba_`` (n, c), ``proba_``, ``labels_`` (a confirmed note keeps its theme) and
    ``margins_`` (lead of the best class over the runner-up, in probability).
    """

    def __init__(self, C=100.0, prior_weight=2.0, spread_share=0.5, n_neighbors=10, spread_alpha=0.8,
                 temperature=0.05, example_weight=1.0, n_spread_iter=30):
        self.C = C
        self.prior_weight = prior_weight
        self.spread_share = spread_share
        self.n_neighbors = n_neighbors
        self.spread_alpha = spread_alpha
        self.temperature = temperature
        self.example_weight = example_weight
        self.n_spread_iter = n_spread_iter

    def fit(self, X, prior, prior_themes, confirmed_rows=(), confirmed_themes=(), examples=None,
            example_themes=None, anchors=None):
        # One BLAS thread: small products, and results that do not depend on the core count.
        with threadpool_limits(limits=1):
            return self._fit(np.asarray(X, dtype=np.float64), np.asarray(prior, dtype=np.float64),
                             [str(t) for t in prior_themes], np.asarray(confirmed_rows, dtype=int),
                             np.asarray([str(t) for t in confirmed_themes], dtype=object),
                             examples, example_themes, anchors)

    def _fit(self, X, prior, prior_themes, rows, themes, examples, example_themes, anchors):
        n = len(X)
        if prior.shape != (n, len(prior_themes)):
            raise ValueError(f"prior has shape {prior.shape}; expected ({n}, {len(prior_themes)}).")
        if len(rows) != len(themes):
            raise ValueError("confirmed_rows and confirmed_themes must have the same length.")
        added = sorted(set(themes) - set(prior_themes) - {EXCLUDED})
        self.classes_ = [*prior_themes, *added, *([EXCLUDED] if EXCLUDED in set(themes) else [])]
        column = {c: j for j, c in enumerate(self.classes_)}
        score = self._classifier(X, rows, themes, examples, example_themes, anchors, column)
        score = score + self.prior_weight * self._prior(X, prior, rows, themes, column)
        if self.spread_share > 0 and n > 2:
            start = np.exp(_log_softmax(score))
            spread = self._spread(X, start, rows, [column[t] for t in themes])
            score = (1 - self.spread_share) * np.log(start + 1e-9) + self.spread_share * np.log(spread + 1e-9)
        self.log_proba_ = _log_softmax(score)
        self.proba_ = np.exp(self.log_proba_)
        labels = np.asarray(self.classes_, dtype=object)[self.log_proba_.argmax(axis=1)]
        labels[rows] = themes
        self.labels_ = labels
        ordered = np.sort(self.proba_, axis=1)
        self.margins_ = ordered[:, -1] - ordered[:, -2] if len(self.classes_) > 1 else ordered[:, -1]
        return self

    def _prior(self, X, prior, rows, themes, column) -> np.ndarray:
        """The model's scores, with a column per new class (cosine to its confirmed notes' centroid),
        standardised by the mean and spread of the model's scores over all notes."""
        out = np.zeros((len(X), len(self.classes_)))
        out[:, :prior.shape[1]] = prior
        for theme in self.classes_[prior.shape[1]:]:
            cosine = X @ unit_length(X[rows[themes == theme]].mean(axis=0))
            if prior.shape[1] and theme != EXCLUDED:  # the excluded notes are no theme the model knew
                # On the model themes' scale (their mean column mean and spread): a cosine to a few
                # notes' centroid lacks the seeds' lexical evidence and the prototypes' refinement.
                cosine = (cosine - cosine.mean()) / (cosine.std() or 1.0)
                cosine = cosine * prior.std(axis=0).mean() + prior.mean(axis=0).mean()
            out[:, column[theme]] = cosine
        # Standardised by the model's own themes, so a class a decision adds does not rescale them.
        known = out[:, :prior.shape[1]] if prior.shape[1] else out
        spread = known.std()
        return (out - known.mean()) / (spread if spread > 0 else 1.0)

    def _classifier(self, X, rows, themes, examples, example_themes, anchors, column) -> np.ndarray:
        """Log-probabilities of a logistic regression on the confirmed notes, examples and anchors."""
        parts = [(X[rows], themes, 1.0)]
        if examples is not None and len(examples):
            parts.append((np.asarray(examples, dtype=np.float64), np.asarray(example_themes, dtype=object),
                          self.example_weight))
        if anchors is not None and len(anchors):
            parts.append((np.asarray(anchors, dtype=np.float64), np.asarray(self.classes_[:len(anchors)], dtype=object),
                          self.example_weight))
        train = np.vstack([p[0] for p in parts])
        target = np.concatenate([p[1] for p in parts]).astype(str)
        weight = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
        out = np.full((len(X), len(self.classes_)), -30.0)
        present = np.unique(target)
        if len(present) < 2:
            if len(present):
                out[:, column[present[0]]] = 0.0
            return out
        from sklearn.linear_model import LogisticRegression

        regression = LogisticRegression(C=self.C, max_iter=2000).fit(train, target, sample_weight=weight)
        log_proba = regression.predict_log_proba(X)
        for j, theme in enumerate(regression.classes_):
            out[:, column[theme]] = log_proba[:, j]
        return out

    def _spread(self, X, start, rows, columns) -> np.ndarray:
        """Label spreading (Zhou et al. 2004) on the cosine kNN graph, confirmed notes clamped."""
        from sklearn.neighbors import NearestNeighbors

        n = len(X)
        k = min(self.n_neighbors, n - 1)
        distances, neighbours = NearestNeighbors(n_neighbors=k + 1, metric="cosine",
                                                 algorithm="brute").fit(X).kneighbors(X)
        weights = np.exp(-distances[:, 1:] / self.temperature)
        graph = csr_matrix((weights.ravel(), (np.repeat(np.arange(n), k), neighbours[:, 1:].ravel())), shape=(n, n))
        graph = graph.maximum(graph.T)
        degree = np.asarray(graph.sum(axis=1)).ravel()
        scale = diags(1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)))
        normalised = scale @ graph @ scale
        anchor = start.copy()
        if len(rows):
            anchor[rows] = 0.0
            anchor[rows, columns] = 1.0
        spread = anchor.copy()
        for _ in range(self.n_spread_iter):
            spread = self.spread_alpha * (normalised @ spread) + (1 - self.spread_alpha) * anchor
        return spread / np.maximum(spread.sum(axis=1, keepdims=True), 1e-12)


# --- from the overrides file to a re-scored model ----------------------------------------


def confirmed_notes(overrides, note_ids) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Rows and themes of the notes the overrides file decides, in note-id order, and the names
    pins give new themes (``pin: {note, theme, name}``). An exclusion wins over a pin of the same
    note, as in ``apply_overrides``; of two pins of one note the later one counts."""
    row_of = {str(note): i for i, note in enumerate(note_ids)}
    decided, names = {}, {}
    if overrides is not None:
        for entry in overrides.pin:
            if str(entry["note"]) in row_of:
                decided[str(entry["note"])] = str(entry["theme"])
                if entry.get("name"):
                    names[str(entry["theme"])] = str(entry["name"])
        for entry in overrides.exclude:
            if str(entry["note"]) in row_of:
                decided[str(entry["note"])] = EXCLUDED
    notes = sorted(decided)
    return (np.array([row_of[n] for n in notes], dtype=int), np.array([decided[n] for n in notes], dtype=object),
            names)


def seed_example_vectors(seeds, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Each seed example's own vector (the seed's prototype averages them) and its theme."""
    texts = [example for seed in seeds for example in seed.examples]
    themes = np.array([seed.id for seed in seeds for _ in seed.examples], dtype=object)
    if not texts:
        return np.zeros((0, 0)), themes
    return np.asarray(embedder.encode(texts, kind="query"), dtype=np.float64), themes


def model_scores(model, centred, evidence=None) -> np.ndarray:
    """The ThemeModel's score of every note for every theme: cosine plus the seeds' lexical evidence."""
    scores = centred @ model.prototypes_.T
    if evidence is not None and evidence.shape[1]:
        scores[:, :evidence.shape[1]] += evidence
    return scores


def learn(model, centred, note_ids, overrides=None, seed_vectors=None, examples=None, example_themes=None,
          evidence=None, learner=None, keep_candidates=False) -> dict:
    """Fit the learner on the run's confirmed notes; move the notes the decisions reach.

    ``examples`` are the seed examples' raw vectors (``seed_example_vectors``), centred here as
    the seeds are. The learner is fitted twice: on the seed file alone (``baseline``) and with
    the analyst's decisions. A note the decisions *reach* is one whose learnt theme they change
    (the two fits disagree on it): it takes the learner's theme (a theme first named by a pin is
    added; a note like the excluded ones is left unassigned). Every other note keeps the model's
    decision, candidate new themes and ``unassigned`` included, so a first pin moves the notes
    like it and not the whole corpus, and the learner's influence grows with the decisions.
    The confirmed notes themselves keep the model's answer here: ``apply_overrides`` pins and
    excludes them and records what the model said. The model is changed only through
    ``ThemeModel.reassign``. Returns ``{"learner", "baseline", "rows", "themes", "names",
    "applied", "reached", "confirmed", "example_vectors", "candidates"}``, ``reached`` the mask
    of moved notes, ``confirmed`` counting confirmed notes and seed examples per theme,
    ``example_vectors`` the centred seed examples (or None), ``candidates`` each note's
    candidate new theme from the fit ("" for none). The fit's candidate new themes are learner
    classes only when there are no seeds, or with ``keep_candidates``.
    """
    rows, themes, names = confirmed_notes(overrides, note_ids)
    ids = model.themes_["theme_id"].tolist()
    anchors = np.array(model.prototypes_, dtype=np.float64)
    n_seeds = 0 if seed_vectors is None else len(seed_vectors)
    if n_seeds:
        anchors[:n_seeds] = unit_length(np.asarray(seed_vectors, dtype=np.float64) - model.mean_)
    example_rows = None
    if examples is not None and len(examples):
        example_rows = unit_length(np.asarray(examples, dtype=np.float64) - model.mean_)
    learner = learner if learner is not None else ConfirmedNotesLearner()
    # With seeds, the learner scores the seed and analyst themes only, not the fit's candidate new
    # themes (keeping them as classes cost 0.05-0.08 kappa at 5 notes per theme, benchmarks/README.md);
    # the notes no decision reaches keep their candidate theme, and a pin turns a candidate into a class.
    # A candidate a pin names is a class, known as the model knew it (its scores and prototype).
    keep = [j for j, theme in enumerate(ids) if keep_candidates or not n_seeds or j < n_seeds or theme in set(themes)]
    kept = [ids[j] for j in keep]
    candidates = np.where(model.status_ == STATUS_NEW_THEME, model.labels_, "").astype(object)
    prior = model_scores(model, centred, evidence)[:, keep]
    learner.fit(centred, prior, kept, rows, themes, example_rows, example_themes, anchors[keep])
    applied = bool(len(rows))
    baseline, reached = None, np.zeros(len(centred), dtype=bool)
    if applied:
        baseline = clone(learner).fit(centred, prior, kept, (), (), example_rows, example_themes, anchors[keep])
        reached = np.asarray(learner.labels_, dtype=object) != np.asarray(baseline.labels_, dtype=object)
        reached[rows] = False
        # A note the decisions change in the learner but that keeps the model's theme has not moved.
        learnt = np.asarray(learner.labels_, dtype=object)
        reached &= np.where(learnt == EXCLUDED, "", learnt) != np.asarray(model.labels_, dtype=object)
        _give_model_labels(model, learner, centred, rows, themes, reached, evidence)
    confirmed = {theme: {"notes": int((themes == theme).sum()),
                         "examples": int(np.sum(np.asarray(example_themes, dtype=object) == theme))
                         if example_themes is not None else 0}
                 for theme in learner.classes_}
    return {"learner": learner, "baseline": baseline, "rows": rows, "themes": themes, "names": names,
            "applied": applied, "reached": reached, "confirmed": confirmed, "example_vectors": example_rows,
            "candidates": candidates}


def _give_model_labels(model, learner, centred, rows, themes, reached, evidence) -> None:
    """The learner's theme for the reached notes, the model's for the rest, through
    ``ThemeModel.reassign``. Themes a pin names are added (kind seed: the analyst's codebook);
    a candidate new theme is kept while a note holds it."""
    learnt = np.asarray(learner.labels_, dtype=object)
    labels = np.where(reached, np.where(learnt == EXCLUDED, "", learnt), model.labels_).astype(object)
    status = model.status_.copy()
    reason = model.reason_.copy()
    kinds = dict(zip(model.themes_["theme_id"], model.themes_["kind"]))
    prototypes = dict(zip(model.themes_["theme_id"], model.prototypes_))
    decided = set(themes) - {EXCLUDED}
    table = [(t, k) for t, k in kinds.items() if k == "seed" or (labels == t).any() or t in decided]
    table += [(t, "seed") for t in learner.classes_ if t not in kinds and t != EXCLUDED]
    for theme, _ in table:
        if theme not in prototypes:
            members = (labels == theme) | np.isin(np.arange(len(labels)), rows[themes == theme])
            prototypes[theme] = unit_length(centred[members].mean(axis=0))
    kind_of = dict(table)
    status[reached] = [STATUS_UNASSIGNED if not t else STATUS_ASSIGNED if kind_of.get(t) == "seed"
                       else STATUS_NEW_THEME for t in labels[reached]]
    reason[reached] = np.where(learnt[reached] == EXCLUDED, "like the notes the analyst excluded",
                               "moved by the analyst's decisions (like the notes confirmed in this theme)")
    frame = pd.DataFrame({"theme_id": [t for t, _ in table], "kind": [k for _, k in table]})
    model.reassign(centred, labels, status, reason, frame, [prototypes[t] for t, _ in table], evidence)
