"""ThemeModel: themes from notes, guided by a seed codebook and found inductively.

Why not plain clustering of embeddings: multilingual embeddings of short notes carry the
note's language and writing style as strongly as its meaning, so clusters follow language.
The model therefore works in a *centred* space. It fits an additive model

    x_i  ≈  theme effect(theme of i)  +  group effect(lang of i)  +  group effect(source of i)

by alternating least squares: group effects are estimated from within-theme residuals, so a
language that happens to dominate one theme (Swedish notes from Mariestad about moves between
services) does not have that theme's meaning removed with its language.

Inductive themes come from spectral clustering of a cosine k-nearest-neighbour graph of the
centred notes; the number of themes maximises the graph's modularity (the whole curve is
kept in ``k_selection_`` for the figure and the report). Guided themes start
from the seed descriptions; prototypes are refined with the clearest half of the notes each
attracts. A note's score for a seed is its centred cosine plus, when given, lexical evidence
(the seed's own words in the note, see ``analysis.lexical``), weighted by how well that
evidence agrees with the embedding and put on the cosines' scale.
Notes too far from every seed are clustered into new candidate themes. Every note ends with a
status (assigned, new_theme, unassigned with a reason).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from scipy.special import expit
import pandas as pd
from scipy.sparse import csr_matrix, diags
from scipy.sparse.csgraph import connected_components, laplacian
from scipy.sparse.linalg import eigsh
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.metrics import cohen_kappa_score
from threadpoolctl import threadpool_limits

from analysis.config import SEED_TEXTS, ThemesConfig
from analysis.schema import STATUS_ASSIGNED, STATUS_NEW_THEME, STATUS_UNASSIGNED, SeedTheme  # noqa: F401

_DEFAULTS = ThemesConfig()


#: Unit vectors are rounded to multiples of 2^-GRID_BITS. A product of two such vectors is then
#: an exact sum in float64, in any order and with or without FMA: each term is a multiple of
#: 2^-52, and every partial sum is at most the product of the two parts' norms (Cauchy–Schwarz),
#: below 2, so it fits in 53 bits. Every matrix product of the fit (scores, refinement, kNN
#: similarities) therefore has the same bits whatever the BLAS kernel and thread count
#: (issue 15). The rounding moves a cosine by about 1e-8.
GRID_BITS = 26


def on_grid(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` rounded to the nearest multiples of 2^-GRID_BITS (ties to even), as float64."""
    scale = float(2 ** GRID_BITS)
    return np.round(np.asarray(matrix, dtype=np.float64) * scale) / scale


def unit_length(matrix: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def _unit(matrix: np.ndarray) -> np.ndarray:
    """``unit_length`` on the grid (``on_grid``)."""
    return on_grid(unit_length(matrix))


# --- group centring ---------------------------------------------------------------------


def fit_group_effects(vectors: np.ndarray, groups: pd.DataFrame, theme_labels: np.ndarray,
                      n_iter: int = 5) -> dict[str, dict[str, np.ndarray]]:
    """Per-column, per-value offset vectors, estimated from within-theme residuals."""
    effects = {col: {} for col in groups.columns}
    codes = {col: groups[col].astype(str).to_numpy() for col in groups.columns}
    labels = np.asarray(theme_labels)
    for _ in range(n_iter):
        shifted = vectors - _total_offset(effects, codes, len(vectors), vectors.shape[1])
        centroids = {t: shifted[labels == t].mean(axis=0) for t in np.unique(labels)}
        theme_part = np.stack([centroids[t] for t in labels])
        for col in groups.columns:
            others = {c: e for c, e in effects.items() if c != col}
            residual = vectors - theme_part - _total_offset(others, codes, len(vectors), vectors.shape[1])
            values = codes[col]
            means = {v: residual[values == v].mean(axis=0) for v in np.unique(values)}
            grand = residual.mean(axis=0)
            effects[col] = {v: m - grand for v, m in means.items()}
    return effects


def _total_offset(effects, codes, n, dim) -> np.ndarray:
    total = np.zeros((n, dim))
    for col, by_value in effects.items():
        for value, offset in by_value.items():
            total[codes[col] == value] += offset
    return total


def apply_group_effects(vectors: np.ndarray, groups: pd.DataFrame | None,
                        effects: dict[str, dict[str, np.ndarray]], mean: np.ndarray) -> np.ndarray:
    """Centred, unit-length vectors; unseen group values get no offset."""
    shifted = vectors - mean
    if groups is not None:
        for col, by_value in effects.items():
            if col not in groups.columns:
                continue
            values = groups[col].astype(str).to_numpy()
            for value, offset in by_value.items():
                shifted[values == value] -= offset
    return _unit(shifted)


# --- inductive clustering ---------------------------------------------------------------


def knn_graph(vectors: np.ndarray, n_neighbors: int, chunk: int = 1024):
    """Symmetric 0/1 cosine k-nearest-neighbour graph (sparse).

    The similarities are products of grid vectors (``_unit``), so exact, and equal
    similarities go to the lower row: the same neighbours on any machine (scikit-learn's
    ``kneighbors_graph`` renormalises, and its partial sort breaks ties by the kernel's bits).
    """
    n = len(vectors)
    n_neighbors = max(2, min(n_neighbors, n - 1))
    unit = _unit(np.asarray(vectors, dtype=np.float64))
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = np.arange(start, min(start + chunk, n))
        similarity = unit[block] @ unit.T
        similarity[np.arange(len(block)), block] = -np.inf  # a note is not its own neighbour
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :n_neighbors]
        rows.append(np.repeat(block, n_neighbors))
        cols.append(nearest.ravel())
    graph = csr_matrix((np.ones(n * n_neighbors), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return ((graph + graph.T) > 0).astype(float)


#: Up to this many notes the Laplacian is decomposed densely (exact, and quick at this size);
#: above it only the eigenvectors that are used are computed, with ARPACK (Lanczos). Dense
#: ``eigh`` of the 4,016-note SIB-200 mix took 22 s of a 23 s fit (benchmarks/README.md).
DENSE_EIGEN_LIMIT = 1500


def spectral_embedding(graph, n_components: int) -> np.ndarray:
    """Eigenvectors of the graph's normalised Laplacian, smallest eigenvalues first."""
    n = graph.shape[0]
    n_components = min(n_components, n)
    # Lanczos finds one vector per eigenvalue, and a graph in c pieces has the eigenvalue 0 c
    # times, so a disconnected graph (e.g. a clique of duplicate notes) is decomposed densely.
    if n <= DENSE_EIGEN_LIMIT or n_components >= n - 1 or connected_components(graph, directed=False)[0] > 1:
        values, vecs = np.linalg.eigh(laplacian(graph, normed=True).toarray())
        vecs = canonical_eigenbasis(values, vecs)[:, :n_components]
    else:
        # L = I - D^-1/2 A D^-1/2: its smallest eigenvalues are the largest of the second term.
        degrees = np.asarray(graph.sum(axis=1)).ravel()
        scale = diags(1.0 / np.sqrt(np.where(degrees > 0, degrees, 1.0)))
        values, vecs = eigsh(scale @ graph @ scale, k=n_components, which="LA",
                             v0=np.full(n, 1.0 / np.sqrt(n)), tol=1e-10)
        vecs = vecs[:, np.argsort(-values, kind="stable")]
    # eigh's sign is arbitrary; fix it so the embedding is reproducible.
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return vecs * np.where(signs == 0, 1, signs)


#: Eigenvalues closer than this are one repeated eigenvalue (see ``canonical_eigenbasis``).
EIGENVALUE_TIE = 1e-6


def canonical_eigenbasis(values: np.ndarray, vecs: np.ndarray, tie: float = EIGENVALUE_TIE) -> np.ndarray:
    """``eigh``'s eigenvectors with each repeated eigenvalue's basis replaced by a canonical one.

    For a repeated eigenvalue (a complete graph, cliques of duplicate notes, a graph in pieces)
    any rotation of the eigenvectors is as correct, and LAPACK's choice follows the BLAS
    kernel: on a complete graph of 9 notes, OpenBLAS's Haswell and Prescott kernels gave
    different new themes. The canonical basis is Gram–Schmidt on the eigenspace's projections
    of the unit vectors e_1, e_2, … (notes in row order), which depends on the eigenspace only.
    """
    vecs = np.array(vecs, dtype=np.float64)
    start = 0
    while start < len(values):
        end = start + 1
        while end < len(values) and values[end] - values[end - 1] <= tie:
            end += 1
        if end - start > 1:
            vecs[:, start:end] = _gram_schmidt_of_projector(vecs[:, start:end])
        start = end
    return vecs


def _gram_schmidt_of_projector(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of span(block) from its projections of e_1, e_2, … in order."""
    projector = block @ block.T
    basis = []
    for column in projector.T:
        residual = column - sum((b @ column) * b for b in basis) if basis else column.copy()
        norm = np.linalg.norm(residual)
        if norm > 1e-6:
            basis.append(residual / norm)
            if len(basis) == block.shape[1]:
                break
    return np.stack(basis, axis=1)


def modularity(graph, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman's modularity of a partition of an undirected graph; ``resolution`` γ > 1 favours
    more, smaller groups (γ = 1 is what ``choose_k`` uses)."""
    degrees = np.asarray(graph.sum(axis=1)).ravel()
    total = degrees.sum()
    score = 0.0
    for cluster in np.unique(labels):
        members = labels == cluster
        score += graph[members][:, members].sum() / total - resolution * (degrees[members].sum() / total) ** 2
    return float(score)


def cluster_spectral(embedding: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """k-means on the first k row-normalised spectral coordinates."""
    space = _unit(embedding[:, :k])
    return KMeans(k, n_init=10, random_state=random_state).fit_predict(space)


def choose_k(graph, embedding: np.ndarray, k_range: range, random_state: int
             ) -> tuple[int, pd.DataFrame, dict[int, np.ndarray]]:
    """The k whose partition has the highest modularity on the kNN graph.

    Modularity is measured on one fixed graph for every k, unlike the silhouette in the
    k-dimensional spectral space, which grows or shrinks with the dimension itself and on
    SIB-200 always preferred k = 2 (see benchmarks/README.md).
    """
    rows, partitions = [], {}
    for k in k_range:
        labels = cluster_spectral(embedding, k, random_state)
        partitions[k] = labels
        sizes = np.bincount(labels, minlength=k)
        rows.append({"k": k, "modularity": modularity(graph, labels), "smallest_theme": int(sizes.min())})
    table = pd.DataFrame(rows)
    best = int(table.loc[table["modularity"].idxmax(), "k"])
    table["chosen"] = table["k"] == best
    return best, table, partitions


def _canonical_order(vectors: np.ndarray, labels: np.ndarray, k: int) -> list[int]:
    """Clusters largest first, ties by their rounded centroid, so that new theme ids do not
    depend on k-means' arbitrary cluster numbers (which change with the notes' row order)."""
    def key(cluster):
        members = vectors[labels == cluster]
        centroid = _unit(members.mean(axis=0)) if len(members) else np.zeros(vectors.shape[1])
        return (-len(members), tuple(np.round(centroid, 6)))
    return sorted(range(k), key=key)


#: The largest automatic k: above it the k-means runs of ``choose_k`` dominate a fit's time.
MAX_K_CEILING = 40


def default_max_k(n: int) -> int:
    """The largest number of new themes tried when ``max_k`` is not set: about the square root
    of the number of notes (10 for 100 notes, 18 for 320, 32 for 1,000), at most 40, so a
    large corpus can hold more themes than a small one, and a theme keeps about as many notes
    as there are themes."""
    return int(np.clip(round(np.sqrt(max(n, 1))), 2, MAX_K_CEILING))


def default_neighbors(n: int) -> int:
    """About log2(n)+5 neighbours: local enough for short notes, connected enough for spectra."""
    return int(np.clip(round(np.log2(max(n, 2)) + 5), 5, 30))


# --- seed scores --------------------------------------------------------------------------


def view_agreement(embedding_best: np.ndarray, view: np.ndarray) -> float:
    """Cohen's kappa (floored at 0) between the embedding's best seed and a lexical view's.

    A note the view has no evidence for (a row of zeros) counts as a disagreement, so a view
    that is silent on most notes counts little, however right it is on the few it covers.
    """
    view_best = np.where(view.max(axis=1) > 0, view.argmax(axis=1), -1)
    if len(np.unique(np.concatenate([embedding_best, view_best]))) < 2:
        return 0.0
    kappa = cohen_kappa_score(embedding_best, view_best)
    return float(kappa) if np.isfinite(kappa) and kappa > 0 else 0.0


# --- large corpora -----------------------------------------------------------------------


def note_hashes(X: np.ndarray, groups: pd.DataFrame, random_state: int = 0) -> np.ndarray:
    """A 64-bit hash of each note's vector and group values, salted with ``random_state``."""
    vectors = np.ascontiguousarray(X, dtype=np.float64)
    values = groups.astype(str).to_numpy() if len(groups.columns) else np.empty((len(X), 0), dtype=object)
    salt = str(random_state).encode()[:16]
    hashes = np.empty(len(X), dtype=np.uint64)
    for i in range(len(X)):
        digest = hashlib.blake2b(vectors[i].tobytes(), digest_size=8, salt=salt)
        digest.update("\x1f".join(values[i]).encode())
        hashes[i] = int.from_bytes(digest.digest(), "big")
    return hashes


def fit_sample(X: np.ndarray, groups: pd.DataFrame, size: int, random_state: int = 0) -> np.ndarray:
    """Row positions of the ``size`` notes with the smallest hashes, in hash order.

    The choice depends on the notes, never on their row order: the same notes in any order
    give the same sample in the same order, hence the same themes. Notes with equal hashes
    are identical (same vector, same groups), so which of them is taken changes nothing.
    """
    return np.argsort(note_hashes(X, groups, random_state), kind="stable")[:size]


def nearest_rows(queries: np.ndarray, references: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each query row, the position of the reference row with the highest dot product.

    Computed in chunks so memory stays at ``chunk × len(references)`` whatever the size.
    """
    nearest = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        nearest[start:start + chunk] = (queries[start:start + chunk] @ references.T).argmax(axis=1)
    return nearest


# --- the estimator ----------------------------------------------------------------------


class ThemeModel(TransformerMixin, BaseEstimator):
    """Guided and inductive themes over note embeddings.

    ``fit(X, groups=None, seed_vectors=None, seed_ids=None)``:
      * ``X``: (n, d) unit-length embeddings of the notes;
      * ``groups``: DataFrame with the columns named in ``centre_by`` (e.g. lang, source_type);
      * ``seed_vectors``: (m, d) prototypes of seed themes (or None for a purely inductive run);
      * ``seed_lexical``: optional lexical views, each (n, m), of how much of each seed's wording
        each note shares (``analysis.lexical.seed_lexical_scores``).

    A note's score for a seed is its centred cosine to the seed's prototype plus the lexical
    evidence: each view standardised over all note-seed pairs, weighted by ``lexical_weight``
    ("agreement": the view's Cohen's kappa with the embedding's best seed, floored at 0; or a
    number), and scaled by the spread of the cosines, so ``seed_threshold`` stays on the
    cosine scale and without lexical views the score is the plain cosine. Each prototype moves
    toward the notes it attracts, each weighted by how clearly it does (``_refine``).

    Learned: ``labels_`` (theme id per note, "" when unassigned), ``status_``, ``reason_``,
    ``scores_``, ``margins_``, ``secondary_``, ``themes_`` (DataFrame of theme id, kind,
    prototype index), ``prototypes_``, ``k_selection_``, ``fit_sample_`` (row positions of
    the notes the themes were fitted on: all of them, or ``max_fit_notes`` chosen by hash),
    ``lexical_weights_`` and ``lexical_scale_`` (weight, and mean and standard deviation, of
    each lexical view) and ``lexical_unit_`` (the cosines' standard deviation).

    Above ``max_fit_notes`` notes (None: no limit) the group effects and the themes are fitted
    on a sample chosen by a hash of each note's vector and groups, and every note is then
    placed by the fit's own rule (see ``_place``), so time and memory grow linearly.
    """

    # The defaults a config can set are the config's (config.ThemesConfig, their one home).
    def __init__(self, n_themes=_DEFAULTS.n_themes, min_k=_DEFAULTS.min_k, max_k=_DEFAULTS.max_k,
                 centre_by=_DEFAULTS.centre_by, seed_threshold=_DEFAULTS.seed_threshold,
                 secondary_margin=_DEFAULTS.secondary_margin, min_theme_size=_DEFAULTS.min_theme_size,
                 n_neighbors=None, n_refine=3, random_state=_DEFAULTS.random_state,
                 max_fit_notes=_DEFAULTS.max_fit_notes, refine_temperature=0.03, lexical_weight="agreement"):
        self.n_themes = n_themes
        self.min_k = min_k
        self.max_k = max_k
        self.centre_by = centre_by
        self.seed_threshold = seed_threshold
        self.secondary_margin = secondary_margin
        self.min_theme_size = min_theme_size
        self.n_neighbors = n_neighbors
        self.n_refine = n_refine
        self.random_state = random_state
        self.max_fit_notes = max_fit_notes
        self.refine_temperature = refine_temperature
        self.lexical_weight = lexical_weight

    # -- fitting --
    def fit(self, X, y=None, groups: pd.DataFrame | None = None, seed_vectors=None, seed_ids=None,
            seed_lexical=None):
        # One BLAS/OpenMP thread: the fit is hundreds of small k-means and matrix products,
        # where threads only add synchronisation (SIB-200 nb: 1.6 s wall and 1.7 s CPU on one
        # thread, 2.1 s and 3.9 s on two; under load, one fit took 200 s on all threads,
        # benchmarks/README.md), and results then do not depend on the machine's core count.
        with threadpool_limits(limits=1):
            return self._fit(X, groups, seed_vectors, seed_ids, seed_lexical)

    def _fit(self, X, groups, seed_vectors, seed_ids, seed_lexical):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError("ThemeModel.fit needs a non-empty (n_notes, dim) embedding matrix.")
        lexical = self._check_lexical(seed_lexical, len(X), seed_vectors)
        groups = self._groups(groups, len(X))
        if self.max_fit_notes and len(X) > self.max_fit_notes:
            return self._fit_on_sample(X, groups, seed_vectors, seed_ids, lexical)
        self.fit_sample_ = np.arange(len(X))
        return self._fit_all(X, groups, seed_vectors, seed_ids, lexical)

    def _check_lexical(self, seed_lexical, n, seed_vectors) -> list[np.ndarray]:
        if not (isinstance(self.refine_temperature, (int, float)) and self.refine_temperature > 0):
            raise ValueError(f"refine_temperature must be a number > 0, got {self.refine_temperature!r}.")
        weight = self.lexical_weight
        if weight != "agreement" and not (isinstance(weight, (int, float)) and weight >= 0):
            raise ValueError(f"lexical_weight must be 'agreement' or a number >= 0, got {weight!r}.")
        if seed_lexical is None or len(seed_lexical) == 0:
            return []
        if seed_vectors is None or len(seed_vectors) == 0:
            raise ValueError("seed_lexical scores notes against seed themes; pass seed_vectors with it.")
        views = [np.asarray(view, dtype=np.float64) for view in seed_lexical]
        for index, view in enumerate(views):
            if view.shape != (n, len(seed_vectors)) or not np.isfinite(view).all():
                raise ValueError(f"seed_lexical[{index}] has shape {view.shape}; expected finite scores of "
                                 f"shape (n_notes, n_seeds) = ({n}, {len(seed_vectors)}), rows in the order of X.")
        return views

    def _fit_all(self, X, groups, seed_vectors, seed_ids, lexical=()):
        """Fit on every note: group effects, seed prototypes and new themes (O(n²) memory).

        The group effects are the groups' additive mean offsets (``fit_group_effects`` with one
        theme for all notes). Effects fitted within rough k-means themes, as before 2026-12-03,
        moved with every tiny change of the vectors (the rough themes agreed at ARI 0.28 after
        noise of sigma 1e-4) and did not raise guided kappa (benchmarks/README.md, "Dev suite").
        """
        self.mean_ = X.mean(axis=0)
        self.group_effects_ = (fit_group_effects(X - self.mean_, groups, np.zeros(len(X), dtype=int))
                               if len(groups.columns) else {})
        centred = apply_group_effects(X, groups, self.group_effects_, self.mean_)
        self.labels_ = self._assign(centred, seed_vectors, seed_ids, lexical)
        self._keep_fitted_notes(centred)
        return self

    def _keep_fitted_notes(self, centred) -> None:
        """The fitted notes that no seed took, with their themes: the rule ``predict`` and large
        corpora use to place a note (its nearest such note's theme, or unassigned)."""
        left = self.status_ != STATUS_ASSIGNED
        self.rest_vectors_ = np.asarray(centred[left], dtype=np.float64)
        self.rest_labels_ = np.asarray(self.labels_[left], dtype=object)
        self.rest_status_ = np.asarray(self.status_[left], dtype=object)
        self.rest_reason_ = np.asarray(self.reason_[left], dtype=object)

    def _fit_on_sample(self, X, groups, seed_vectors, seed_ids, lexical=()):
        """Large corpora: fit on ``max_fit_notes`` notes chosen by hash, then extend to all.

        Every step is then linear in the number of notes: the fit itself has a fixed size,
        and each note is compared with the theme prototypes and with the sample's notes.
        """
        sample = fit_sample(X, groups, self.max_fit_notes, self.random_state)
        self._fit_all(X[sample], groups.iloc[sample].reset_index(drop=True), seed_vectors, seed_ids,
                      [view[sample] for view in lexical])
        centred = self.centre(X, groups)
        evidence = self._lexical_evidence(lexical)
        assigned_idx, self.status_, self.reason_ = self._place(centred, evidence)
        self._score(centred, assigned_idx, evidence)
        ids = self.themes_["theme_id"].tolist()
        self.labels_ = np.array([ids[i] if i >= 0 else "" for i in assigned_idx], dtype=object)
        self.fit_sample_ = sample
        return self

    def _max_k(self, n: int) -> int:
        return self.max_k if self.max_k else default_max_k(n)

    def _groups(self, groups, n) -> pd.DataFrame:
        if groups is None or not self.centre_by:
            return pd.DataFrame(index=range(n))
        present = [c for c in self.centre_by if c in groups.columns]
        frame = groups[present].reset_index(drop=True).astype(str)
        # A column with one value carries no group effect to remove.
        return frame[[c for c in present if frame[c].nunique() > 1]]

    def _assign(self, centred, seed_vectors, seed_ids, lexical=()) -> np.ndarray:
        n = len(centred)
        self.k_selection_ = pd.DataFrame({"k": pd.Series(dtype=int), "modularity": pd.Series(dtype=float),
                                          "smallest_theme": pd.Series(dtype=int), "chosen": pd.Series(dtype=bool)})
        self.status_ = np.full(n, STATUS_UNASSIGNED, dtype=object)
        self.reason_ = np.full(n, "", dtype=object)
        prototypes, ids, kinds = [], [], []
        assigned_idx = np.full(n, -1)
        self._fit_lexical([], None)
        evidence = None
        if seed_vectors is not None and len(seed_vectors):
            seeds = _unit(np.asarray(seed_vectors, dtype=np.float64) - self.mean_)
            self._fit_lexical(lexical, (centred @ seeds.T).argmax(axis=1))
            protos = self._refine(centred, seeds, self._lexical_z(lexical))
            cosines = centred @ protos.T
            self.lexical_unit_ = float(cosines.std())
            evidence = self._lexical_evidence(lexical)
            scores = cosines if evidence is None else cosines + evidence
            best = scores.argmax(axis=1)
            top = scores[np.arange(n), best]
            ok = top >= self.seed_threshold
            assigned_idx[ok] = best[ok]
            self.status_[ok] = STATUS_ASSIGNED
            prototypes.extend(protos)
            ids.extend(seed_ids)
            kinds.extend(["seed"] * len(seed_ids))
            rest = np.flatnonzero(~ok)
            for i in rest:
                self.reason_[i] = (f"closest seed theme {seed_ids[best[i]]} at {top[i]:.2f}, "
                                   f"below the threshold {self.seed_threshold:.2f}")
        else:
            rest = np.arange(n)
        new_protos = self._new_themes(centred, rest, assigned_idx, len(prototypes))
        for j, proto in enumerate(new_protos):
            prototypes.append(proto)
            ids.append(f"new_{j + 1:02d}")
            kinds.append("new")
        self.prototypes_ = np.asarray(prototypes) if prototypes else np.zeros((0, centred.shape[1]))
        self.themes_ = pd.DataFrame({"theme_id": ids, "kind": kinds})
        self._score(centred, assigned_idx, evidence)
        labels = np.array([ids[i] if i >= 0 else "" for i in assigned_idx], dtype=object)
        return labels

    def _fit_lexical(self, lexical, embedding_best) -> None:
        """Learn each lexical view's weight, and its mean and spread over the fitted notes."""
        self.lexical_weights_, self.lexical_scale_, self.lexical_unit_ = [], [], 0.0
        for view in lexical:
            weight = (view_agreement(embedding_best, view) if self.lexical_weight == "agreement"
                      else float(self.lexical_weight))
            spread = float(view.std())
            self.lexical_weights_.append(weight)
            self.lexical_scale_.append((float(view.mean()), spread if spread > 0 else 1.0))

    def _lexical_z(self, lexical) -> np.ndarray | None:
        """The weighted sum of the standardised lexical views (None without views)."""
        if not len(lexical):
            return None
        return sum(weight * (view - mean) / spread
                   for view, weight, (mean, spread) in zip(lexical, self.lexical_weights_, self.lexical_scale_))

    def lexical_evidence(self, seed_lexical) -> np.ndarray | None:
        """The lexical evidence the fitted model adds to the seed themes' scores, (n, n_seeds)
        in cosine units, for views shaped as in ``fit`` (None without views)."""
        return self._lexical_evidence([np.asarray(view, dtype=np.float64) for view in seed_lexical or ()])

    def _lexical_evidence(self, lexical) -> np.ndarray | None:
        """Lexical evidence on the cosine scale: one standard deviation of it is one of the cosines'."""
        z = self._lexical_z(lexical)
        return None if z is None else self.lexical_unit_ * z

    def _refine(self, centred, seeds, lexical_z=None) -> np.ndarray:
        """Move each seed prototype toward the notes it attracts (soft seeded k-means).

        Each note pulls a prototype with the square of its softmax share of that seed's score
        (temperature ``refine_temperature``, on the cosine scale), so a note that a seed takes
        clearly pulls it fully and a note between two seeds pulls both little. Being smooth,
        the prototypes move by as little as the vectors do: a hard cut (the clearest half of a
        seed's notes, as before 2026-12-03) turned noise of sigma 1e-4 into prototypes at
        cosine 0.92 to their unperturbed selves. Each prototype keeps 30 % of its seed.
        """
        protos = seeds.copy()
        for _ in range(self.n_refine):
            scores = centred @ protos.T
            if lexical_z is not None:
                scores = scores + scores.std() * lexical_z
            top = scores.max(axis=1, keepdims=True)
            shares = np.exp((scores - top) / self.refine_temperature)
            # A note below the seed threshold, which no seed takes, pulls no prototype either.
            taken = expit((top - self.seed_threshold) / self.refine_temperature)
            weights = taken * (shares / shares.sum(axis=1, keepdims=True)) ** 2
            protos = _unit(0.3 * seeds + 0.7 * _unit(weights.T @ centred))
        return protos

    def _new_themes(self, centred, rest, assigned_idx, offset) -> list[np.ndarray]:
        """Cluster notes no seed theme took; keep clusters big enough to be a theme."""
        if len(rest) < max(2 * self.min_theme_size, 3):
            for i in rest:
                self.reason_[i] = self.reason_[i] or "too few notes left to form a new theme"
            return []
        sub = centred[rest]
        graph = knn_graph(sub, self.n_neighbors or default_neighbors(len(sub)))
        upper = min(self._max_k(len(sub)), max(self.min_k, len(sub) // max(self.min_theme_size, 1)), len(sub) - 1)
        embedding = spectral_embedding(graph, max(upper, 2))
        if self.n_themes:  # the number of new themes, with or without seeds
            k = min(self.n_themes, len(sub) - 1)
            labels = cluster_spectral(spectral_embedding(graph, k), k, self.random_state)
            self.k_selection_ = pd.DataFrame({"k": [k], "modularity": [modularity(graph, labels)],
                                              "smallest_theme": [int(np.bincount(labels).min())],
                                              "chosen": [True]})
        else:
            k_range = range(max(2, self.min_k), max(upper, 2) + 1)
            k, self.k_selection_, partitions = choose_k(graph, embedding, k_range, self.random_state)
            labels = partitions[k]
        protos = []
        for cluster in _canonical_order(centred[rest], labels, k):
            members = rest[labels == cluster]
            if len(members) < self.min_theme_size:
                for i in members:
                    self.reason_[i] = (self.reason_[i] + "; " if self.reason_[i] else "") + \
                        f"its cluster has {len(members)} note(s), fewer than min_theme_size {self.min_theme_size}"
                continue
            assigned_idx[members] = offset + len(protos)
            self.status_[members] = STATUS_NEW_THEME
            protos.append(_unit(centred[members].mean(axis=0)))
        return protos

    def _score(self, centred, assigned_idx, evidence=None) -> None:
        """Score and margin of every note for its theme; ``evidence`` is added to the seed
        themes' columns (the first ones), so seed scores are the ones the assignment used."""
        n = len(centred)
        self.scores_ = np.zeros(n)
        self.margins_ = np.zeros(n)
        self.secondary_ = np.full(n, "", dtype=object)
        if len(self.prototypes_) == 0:
            return
        sims = centred @ self.prototypes_.T
        if evidence is not None:
            sims[:, :evidence.shape[1]] += evidence
        ids = self.themes_["theme_id"].tolist()
        for i in range(n):
            order = np.argsort(-sims[i], kind="stable")
            own = assigned_idx[i] if assigned_idx[i] >= 0 else order[0]
            self.scores_[i] = sims[i, own]
            runner = next((j for j in order if j != own), None)
            if runner is None:
                continue
            self.margins_[i] = sims[i, own] - sims[i, runner]
            if assigned_idx[i] >= 0 and self.margins_[i] <= self.secondary_margin:
                self.secondary_[i] = ids[runner]

    # -- using a fitted model --
    def centre(self, X, groups=None) -> np.ndarray:
        return apply_group_effects(np.asarray(X, dtype=np.float64), groups, self.group_effects_, self.mean_)

    def transform(self, X, groups=None) -> np.ndarray:
        """Cosine similarity of each note to each theme prototype (columns as ``themes_``)."""
        return self.centre(X, groups) @ self.prototypes_.T

    def predict(self, X, groups=None, seed_lexical=None) -> np.ndarray:
        """Theme id per note ("" when unassigned) by the fit's own rule: a seed theme takes a
        note whose score (centred cosine plus the lexical evidence of ``seed_lexical``, views as
        in ``fit``) reaches ``seed_threshold``; any other note goes where its nearest fitted
        note that no seed took went (a new theme, or unassigned). ``predict(X_fit)`` therefore
        equals ``labels_``."""
        centred = self.centre(X, groups)
        evidence = self.lexical_evidence(seed_lexical)
        assigned_idx, _, _ = self._place(centred, evidence)
        ids = self.themes_["theme_id"].tolist()
        return np.array([ids[i] if i >= 0 else "" for i in assigned_idx], dtype=object)

    def _place(self, centred, evidence=None):
        """Theme index (-1: none), status and reason of each note by the fit's rule."""
        n = len(centred)
        ids = self.themes_["theme_id"].tolist()
        column = {theme: j for j, theme in enumerate(ids)}
        seed_columns = np.flatnonzero(self.themes_["kind"].to_numpy() == "seed")
        assigned_idx = np.full(n, -1)
        status = np.full(n, STATUS_UNASSIGNED, dtype=object)
        reason = np.full(n, "", dtype=object)
        rest = np.arange(n)
        if len(seed_columns):
            scores = centred @ self.prototypes_[seed_columns].T
            if evidence is not None:
                scores = scores + evidence
            best = seed_columns[scores.argmax(axis=1)]
            top = scores.max(axis=1)
            taken = top >= self.seed_threshold
            assigned_idx[taken] = best[taken]
            status[taken] = STATUS_ASSIGNED
            rest = np.flatnonzero(~taken)
            reason[rest] = [f"closest seed theme {ids[best[i]]} at {top[i]:.2f}, "
                            f"below the threshold {self.seed_threshold:.2f}" for i in rest]
        if len(self.rest_vectors_) == 0:
            for i in rest:
                reason[i] += "; no fitted note was left for new themes"
            return assigned_idx, status, reason
        nearest = nearest_rows(centred[rest], self.rest_vectors_)
        for i, j in zip(rest, nearest):
            theme = self.rest_labels_[j]
            if theme:
                assigned_idx[i] = column[theme]
                status[i] = self.rest_status_[j]
            elif not reason[i]:
                reason[i] = self.rest_reason_[j] or "its nearest fitted note is unassigned"
        return assigned_idx, status, reason

    def reassign(self, centred, labels, status, reason, themes: pd.DataFrame, prototypes,
                 evidence=None) -> "ThemeModel":
        """Take the analyst's themes (``analysis.overrides``): theme table, prototypes, and each
        note's theme id, status and reason; every note is then scored against the new themes.
        ``evidence`` holds the lexical evidence per new theme (its first columns), or None."""
        self.prototypes_ = np.asarray(prototypes) if len(prototypes) else np.zeros((0, centred.shape[1]))
        self.themes_ = themes.reset_index(drop=True)
        index = {t: i for i, t in enumerate(self.themes_["theme_id"])}
        assigned_idx = np.array([index.get(t, -1) if t else -1 for t in labels])
        self.labels_ = np.asarray(labels, dtype=object)
        self.status_ = np.asarray(status, dtype=object)
        self.reason_ = np.asarray(reason, dtype=object)
        self._score(centred, assigned_idx, evidence)
        self._keep_fitted_notes(centred)
        return self

    # -- persistence (npz + json, never pickle) --
    def save(self, path: str | Path) -> None:
        path = Path(path)
        arrays = {"mean": self.mean_, "prototypes": self.prototypes_, "rest_vectors": self.rest_vectors_}
        effects_index = []
        for col, by_value in self.group_effects_.items():
            for value, offset in sorted(by_value.items()):
                arrays[f"effect_{len(effects_index)}"] = offset
                effects_index.append([col, value])
        meta = {"params": self.get_params(), "theme_ids": self.themes_["theme_id"].tolist(),
                "kinds": self.themes_["kind"].tolist(), "effects": effects_index,
                "lexical": {"weights": list(self.lexical_weights_), "scale": [list(p) for p in self.lexical_scale_],
                            "unit": self.lexical_unit_},
                "rest": {"labels": self.rest_labels_.tolist(), "status": self.rest_status_.tolist(),
                         "reason": self.rest_reason_.tolist()}}
        meta["params"]["centre_by"] = list(meta["params"]["centre_by"] or [])
        np.savez(path.with_suffix(".npz"), **arrays)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ThemeModel":
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        params = meta["params"]
        params["centre_by"] = tuple(params["centre_by"])
        model = cls(**params)
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as data:
            model.mean_ = data["mean"]
            model.prototypes_ = data["prototypes"]
            model.rest_vectors_ = data["rest_vectors"]
            model.group_effects_ = {}
            for i, (col, value) in enumerate(meta["effects"]):
                model.group_effects_.setdefault(col, {})[value] = data[f"effect_{i}"]
        model.themes_ = pd.DataFrame({"theme_id": meta["theme_ids"], "kind": meta["kinds"]})
        model.lexical_weights_ = list(meta["lexical"]["weights"])
        model.lexical_scale_ = [tuple(p) for p in meta["lexical"]["scale"]]
        model.lexical_unit_ = float(meta["lexical"]["unit"])
        model.rest_labels_ = np.asarray(meta["rest"]["labels"], dtype=object)
        model.rest_status_ = np.asarray(meta["rest"]["status"], dtype=object)
        model.rest_reason_ = np.asarray(meta["rest"]["reason"], dtype=object)
        return model


# --- seed codebook ----------------------------------------------------------------------


SEED_FIELDS = ("id", "name", "description", "examples")


class SeedFileError(ValueError):
    """A problem in a seed-theme file, naming the file, the theme and the key."""


def load_seed_themes(path: str | Path) -> list[SeedTheme]:
    """Read ``themes: [{id, name, description, examples?}]`` from YAML, with clear errors."""
    from analysis.config import did_you_mean
    from analysis.files import read_yaml, yaml_item_lines

    path = Path(path)
    if not path.is_file():
        raise SeedFileError(f"{path}: seed-theme file not found. Check --seed-themes or [paths] seed_themes.")
    if path.suffix.lower() in (".qdc", ".qdpx"):  # a REFI-QDA codebook, e.g. exported by NVivo
        from analysis.exchange.refi import read_qdc
        from analysis.files import RunFileError

        try:
            return read_qdc(path)
        except RunFileError as error:
            raise SeedFileError(str(error)) from None
    data, text = read_yaml(path, SeedFileError, "seed themes")
    if not isinstance(data, dict) or not isinstance(data.get("themes"), list):
        raise SeedFileError(f"{path}: expected a top-level key 'themes' holding a list of themes. "
                            "Start the file with 'themes:' and list each theme under it as '- id: ...'.")
    seeds, seen = [], set()
    lines = yaml_item_lines(text, "themes")
    for index, entry in enumerate(data["themes"], start=1):
        where = f"{path}, line {lines[index - 1]}, theme {index}" if len(lines) >= index else f"{path}, theme {index}"
        if not isinstance(entry, dict):
            raise SeedFileError(f"{where}: each theme must be a mapping with id, name and description.")
        for key in entry:
            if str(key) not in SEED_FIELDS:
                raise SeedFileError(f"{where}: '{key}' is not a field{did_you_mean(str(key), SEED_FIELDS)} "
                                    f"The fields of a theme are {', '.join(SEED_FIELDS)}.")
        for key in ("id", "name", "description"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise SeedFileError(f"{where} ({entry.get('id', '?')}), key '{key}': missing or empty. "
                                    f"Give every theme a non-empty {key}.")
        theme_id = entry["id"].strip()
        if theme_id in seen:
            raise SeedFileError(f"{where}, key 'id': duplicate id {theme_id!r}. Theme ids must be unique.")
        if theme_id.startswith("new_"):
            raise SeedFileError(f"{where}, key 'id': {theme_id!r} starts with 'new_', which is reserved "
                                "for new themes. Choose another id.")
        seen.add(theme_id)
        examples = entry.get("examples") or []
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            raise SeedFileError(f"{where} ({theme_id}), key 'examples': must be a list of strings.")
        seeds.append(SeedTheme(theme_id, entry["name"].strip(), " ".join(entry["description"].split()),
                               tuple(e.strip() for e in examples if e.strip())))
    if not seeds:
        raise SeedFileError(f"{path}: the 'themes' list is empty. Add themes or leave out --seed-themes.")
    return seeds


def seed_texts(seed: SeedTheme, seed_text: str = _DEFAULTS.seed_text) -> list[str]:
    """The texts whose mean embedding is the seed's prototype (``seed_text``: see config.SEED_TEXTS).

    "name_description" is one text, "name: description". The mean of separate texts ("all")
    gave an example of one to four words ("Fadder for nye") as much weight as the description,
    and the prototypes agreed less with the gold themes on all three guided dev sets
    (benchmarks/README.md, "Dev suite"). The examples still count through the lexical views.
    """
    if seed_text not in SEED_TEXTS:
        raise ValueError(f"seed_text must be one of {', '.join(SEED_TEXTS)}, got {seed_text!r}.")
    return [f"{seed.name}: {seed.description}"] if seed_text == "name_description" else seed.texts()


def seed_prototypes(seeds: list[SeedTheme], embedder, seed_text: str = _DEFAULTS.seed_text) -> np.ndarray:
    """One unit vector per seed theme: the mean embedding of its ``seed_texts``."""
    return np.stack([_unit(embedder.encode(seed_texts(seed, seed_text), kind="query").mean(axis=0))
                     for seed in seeds])
