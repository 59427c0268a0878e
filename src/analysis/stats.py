"""Contingency tables and their tests: chi-square, adjusted residuals, Fisher exact, Holm.

Every function is pure: a DataFrame in, a DataFrame or a small result object out. Row and
column labels are sorted, so the output never depends on the order of the input rows.

Workshop corpora are small, so many cells have expected counts below 5. The chi-square
approximation is then flagged as untrustworthy (Cochran's rule) and a permutation p-value
is reported beside it; per-cell questions ("is this theme over-represented for this
persona?") are answered with Fisher's exact test on the cell's 2×2 table, Holm-corrected
over all cells so that scanning a whole table does not manufacture findings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: Cochran's rule: the chi-square approximation is fine when no expected count is below 1
#: and at most 20 % are below 5.
#: |adjusted residual| at or above this is marked ▲/▼ (heatmaps, the report): roughly p < 0.05 for a single cell.
RESIDUAL_MARK = 2.0
SMALL_EXPECTED = 5.0
MAX_SHARE_SMALL = 0.20


@dataclass(frozen=True)
class ContingencyTests:
    """Overall test of independence for one table."""

    chi2: float
    dof: int
    p_value: float
    min_expected: float
    share_small_expected: float
    trustworthy: bool
    p_permutation: float | None
    n_permutations: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def contingency_table(frame: pd.DataFrame, row: str, column: str) -> pd.DataFrame:
    """Counts of ``row`` × ``column`` with sorted labels (rows and columns never empty)."""
    for name in (row, column):
        if name not in frame.columns:
            raise KeyError(f"column {name!r} is missing; the frame has {sorted(map(str, frame.columns))}.")
    labels = frame[[row, column]].astype(str)
    table = pd.crosstab(labels[row], labels[column])
    table = table.sort_index(axis=0).sort_index(axis=1)
    table.index.name, table.columns.name = row, column
    return table.astype(int)


def expected_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Counts expected under independence: row total × column total / grand total."""
    counts = table.to_numpy(dtype=float)
    total = counts.sum()
    if total == 0:
        return table.astype(float) * 0.0
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total
    return pd.DataFrame(expected, index=table.index, columns=table.columns)


def adjusted_residuals(table: pd.DataFrame) -> pd.DataFrame:
    """Haberman's adjusted (standardised) residuals; roughly N(0, 1) under independence.

    (O − E) / sqrt(E · (1 − row share) · (1 − column share)). Unlike Pearson residuals
    they are comparable across cells, so |r| ≥ 2 is a usable flag. Cells in a row or
    column that is the whole table have no variance and get 0.
    """
    counts = table.to_numpy(dtype=float)
    total = counts.sum()
    if total == 0:
        return table.astype(float) * 0.0
    row_share = counts.sum(axis=1, keepdims=True) / total
    column_share = counts.sum(axis=0, keepdims=True) / total
    expected = row_share * column_share * total
    variance = expected * (1 - row_share) * (1 - column_share)
    with np.errstate(divide="ignore", invalid="ignore"):
        residuals = np.where(variance > 0, (counts - expected) / np.sqrt(variance), 0.0)
    return pd.DataFrame(residuals, index=table.index, columns=table.columns)


def holm_correction(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(stepped), 1.0)
    adjusted = np.empty_like(adjusted_sorted)
    adjusted[order] = adjusted_sorted
    return adjusted


def cell_fisher_p_values(table: pd.DataFrame) -> pd.DataFrame:
    """Two-sided Fisher exact p per cell (this cell vs the rest of its row and column), Holm-corrected."""
    counts = table.to_numpy(dtype=int)
    total = counts.sum()
    row_totals, column_totals = counts.sum(axis=1), counts.sum(axis=0)
    from scipy import stats as scipy_stats

    raw = np.ones(counts.shape)
    known: dict[tuple[int, int, int, int], float] = {}  # cells with the same four counts (often the empty ones)
    for i, j in np.ndindex(counts.shape):
        a = counts[i, j]
        b = row_totals[i] - a
        c = column_totals[j] - a
        d = total - a - b - c
        key = (int(a), int(b), int(c), int(d))
        if key not in known:
            known[key] = scipy_stats.fisher_exact([[a, b], [c, d]]).pvalue
        raw[i, j] = known[key]
    adjusted = holm_correction(raw.ravel()).reshape(counts.shape)
    return pd.DataFrame(adjusted, index=table.index, columns=table.columns)


def _drop_empty_margins(table: pd.DataFrame) -> pd.DataFrame:
    # An all-zero row or column has expected counts of 0, which chi-square cannot use.
    return table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]


def _chi2_statistic(counts: np.ndarray) -> float:
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


#: Permuted tables counted at once (memory: this many times the number of units, in int64).
PERMUTATION_BATCH = 250


def permutation_p_value(table: pd.DataFrame, n_permutations: int = 2000, random_state: int = 0) -> float:
    """P(chi2 ≥ observed) when column labels are shuffled over the units, margins fixed.

    Exact in the limit and valid for small expected counts, where the chi-square
    distribution is not. The +1 in numerator and denominator keeps p > 0.
    """
    table = _drop_empty_margins(table)
    counts = table.to_numpy(dtype=int)
    n_rows, n_columns = counts.shape
    if n_rows < 2 or n_columns < 2:
        return float("nan")
    row_of_unit = np.repeat(np.arange(n_rows), counts.sum(axis=1))
    column_of_unit = np.concatenate([np.repeat(np.arange(n_columns), counts[i]) for i in range(n_rows)])
    observed = _chi2_statistic(counts)
    # Shuffling keeps both margins, so every permuted table has the observed table's expected counts.
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    rng = np.random.default_rng(random_state)
    cells = n_rows * n_columns
    at_least = 0
    for start in range(0, n_permutations, PERMUTATION_BATCH):
        # The same permutations, drawn one by one in order, counted a batch at a time.
        shuffled = np.stack([rng.permutation(column_of_unit)
                             for _ in range(min(PERMUTATION_BATCH, n_permutations - start))])
        offsets = np.arange(len(shuffled))[:, None] * cells
        permuted = np.bincount((offsets + row_of_unit * n_columns + shuffled).ravel(),
                               minlength=len(shuffled) * cells).reshape(len(shuffled), n_rows, n_columns)
        statistics = ((permuted - expected) ** 2 / expected).sum(axis=(1, 2))
        at_least += int((statistics >= observed - 1e-9).sum())
    return (at_least + 1) / (n_permutations + 1)


def contingency_tests(table: pd.DataFrame, n_permutations: int = 2000,
                      random_state: int = 0) -> ContingencyTests:
    """Chi-square test of independence, with a trust flag and a permutation p when counts are small."""
    table = _drop_empty_margins(table)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return ContingencyTests(float("nan"), 0, float("nan"), float("nan"), float("nan"), False,
                                None, 0, "fewer than two non-empty rows or columns: nothing to test")
    from scipy import stats as scipy_stats

    result = scipy_stats.chi2_contingency(table.to_numpy(), correction=False)
    expected = result.expected_freq
    min_expected = float(expected.min())
    share_small = float((expected < SMALL_EXPECTED).mean())
    trustworthy = min_expected >= 1.0 and share_small <= MAX_SHARE_SMALL
    if trustworthy:
        reason = "expected counts meet Cochran's rule (none < 1, at most 20 % < 5)"
        p_permutation, used = None, 0
    else:
        reason = (f"{share_small:.0%} of expected counts are below {SMALL_EXPECTED:g} "
                  f"(minimum {min_expected:.2f}); use the permutation p-value")
        p_permutation, used = permutation_p_value(table, n_permutations, random_state), n_permutations
    return ContingencyTests(float(result.statistic), int(result.dof), float(result.pvalue),
                            min_expected, share_small, trustworthy, p_permutation, used, reason)


def cell_statistics(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: count, shares both ways, expected, adjusted residual, Fisher p (Holm), small flag.

    Columns are named after the table's axes (``table.index.name``, ``table.columns.name``).
    """
    row_name = table.index.name or "row"
    column_name = table.columns.name or "column"
    counts = table.astype(int)
    expected = expected_counts(counts)
    residuals = adjusted_residuals(counts)
    p_cells = cell_fisher_p_values(counts)
    row_totals = counts.sum(axis=1).replace(0, np.nan)
    column_totals = counts.sum(axis=0).replace(0, np.nan)
    rows = []
    for row_label in counts.index:
        for column_label in counts.columns:
            count = int(counts.at[row_label, column_label])
            rows.append({
                row_name: row_label,
                column_name: column_label,
                "count": count,
                f"share_within_{column_name}": float(np.nan_to_num(count / column_totals[column_label])),
                f"share_within_{row_name}": float(np.nan_to_num(count / row_totals[row_label])),
                "expected": float(expected.at[row_label, column_label]),
                "std_residual": float(residuals.at[row_label, column_label]),
                "p_value_cell": float(p_cells.at[row_label, column_label]),
                "small_cell": bool(expected.at[row_label, column_label] < SMALL_EXPECTED),
            })
    # Named columns even without cells (no themed notes), so callers can still filter on them.
    columns = [row_name, column_name, "count", f"share_within_{column_name}", f"share_within_{row_name}",
               "expected", "std_residual", "p_value_cell", "small_cell"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- graph structure

#: Newman–Girvan modularity of a partition of the note graph, read in words. 0 is what a random
#: split with the same theme sizes gives; Newman & Girvan (2004) found clear community structure
#: in practice from about 0.3 on.
MODULARITY_NONE = 0.05
MODULARITY_CLEAR = 0.3


@dataclass(frozen=True)
class StructureStrength:
    modularity: float
    level: str       # "none" | "weak" | "clear"
    sentence: str    # for the summary, the report and the notebooks


def structure_strength(modularity: float) -> StructureStrength:
    """How much group structure a modularity value shows, said plainly."""
    q = float(modularity)
    if not np.isfinite(q) or q < MODULARITY_NONE:
        return StructureStrength(q, "none", (
            f"modularity {q:.2f} is near or below zero: the notes have no group structure the new themes "
            "could find; a random split of the same sizes does as well. Read the new themes as arbitrary "
            "piles, not as findings."))
    if q < MODULARITY_CLEAR:
        return StructureStrength(q, "weak", (
            f"modularity {q:.2f} is weak (below {MODULARITY_CLEAR}): the new themes overlap a lot; treat them "
            "as suggestions to check against the quotes."))
    return StructureStrength(q, "clear", (
        f"modularity {q:.2f} shows clear group structure (at or above {MODULARITY_CLEAR})."))
