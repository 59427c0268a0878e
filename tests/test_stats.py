"""Contingency statistics against scipy and hand-computed reference values."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (adjusted_residuals, cell_fisher_p_values, cell_statistics, contingency_table,
                            contingency_tests, expected_counts, holm_correction, permutation_p_value)


def _table(counts, rows=("a", "b"), columns=("x", "y")):
    table = pd.DataFrame(counts, index=list(rows), columns=list(columns))
    table.index.name, table.columns.name = "theme_id", "persona_id"
    return table


def test_contingency_table_counts_and_sorts_labels():
    frame = pd.DataFrame({"theme_id": ["b", "a", "a", "b", "a"], "persona_id": ["y", "x", "y", "y", "x"]})
    table = contingency_table(frame, "theme_id", "persona_id")
    assert list(table.index) == ["a", "b"] and list(table.columns) == ["x", "y"]
    assert table.to_numpy().tolist() == [[2, 1], [0, 2]]


def test_contingency_table_is_independent_of_row_order():
    frame = pd.DataFrame({"theme_id": list("aabbcab"), "persona_id": list("xyxyzzx")})
    shuffled = frame.sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(contingency_table(frame, "theme_id", "persona_id"),
                                  contingency_table(shuffled, "theme_id", "persona_id"))


def test_expected_counts_by_hand():
    # rows 30/70, columns 40/60, n=100: E[a,x] = 30*40/100 = 12
    expected = expected_counts(_table([[10, 20], [30, 40]]))
    assert expected.to_numpy() == pytest.approx(np.array([[12, 18], [28, 42]]))


def test_adjusted_residual_squared_is_chi_square_for_two_by_two():
    table = _table([[10, 20], [30, 40]])
    chi2 = scipy_stats.chi2_contingency(table.to_numpy(), correction=False).statistic
    residuals = adjusted_residuals(table).to_numpy()
    assert residuals[0, 0] ** 2 == pytest.approx(chi2)
    assert residuals[0, 0] == pytest.approx(-residuals[0, 1])


def test_adjusted_residual_by_hand_for_three_by_two():
    table = _table([[20, 5], [10, 10], [5, 20]], rows=("a", "b", "c"))
    # cell (a, x): O=20, E=25*35/70=12.5, var = 12.5*(1-25/70)*(1-35/70)
    expected = (20 - 12.5) / np.sqrt(12.5 * (1 - 25 / 70) * (1 - 35 / 70))
    assert adjusted_residuals(table).iat[0, 0] == pytest.approx(expected)


def test_holm_against_hand_computed_values():
    adjusted = holm_correction([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_correction([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_correction([]).size == 0


def test_cell_fisher_matches_scipy_then_holm():
    table = _table([[8, 2], [1, 5]])
    raw = []
    for a, b, c, d in [(8, 2, 1, 5), (2, 8, 5, 1), (1, 5, 8, 2), (5, 1, 2, 8)]:
        raw.append(scipy_stats.fisher_exact([[a, b], [c, d]]).pvalue)
    assert cell_fisher_p_values(table).to_numpy().ravel() == pytest.approx(holm_correction(raw))


def test_contingency_tests_match_scipy_and_flag_small_tables():
    large = _table([[50, 30], [20, 60]])
    result = contingency_tests(large)
    reference = scipy_stats.chi2_contingency(large.to_numpy(), correction=False)
    assert result.chi2 == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.dof == 1 and result.trustworthy and result.p_permutation is None

    small = _table([[3, 0], [0, 3]])
    result = contingency_tests(small, n_permutations=500)
    assert not result.trustworthy
    assert "permutation" in result.reason
    # Exact: 2 of the 20 equally likely tables are as extreme -> p = 0.1
    assert result.p_permutation == pytest.approx(0.1, abs=0.04)


def test_contingency_tests_drop_empty_margins_and_refuse_degenerate_tables():
    table = _table([[5, 0], [7, 0]])
    result = contingency_tests(table)
    assert np.isnan(result.chi2) and not result.trustworthy


def test_permutation_p_value_is_seeded_and_sensible():
    dependent = _table([[30, 2], [2, 30]])
    independent = _table([[10, 10], [10, 10]])
    assert permutation_p_value(dependent, 300, random_state=1) < 0.01
    assert permutation_p_value(independent, 300, random_state=1) > 0.5
    assert permutation_p_value(dependent, 300, 7) == permutation_p_value(dependent, 300, 7)


def test_cell_statistics_long_format():
    cells = cell_statistics(_table([[10, 20], [30, 40]]))
    assert list(cells.columns) == ["theme_id", "persona_id", "count", "share_within_persona_id",
                                   "share_within_theme_id", "expected", "std_residual", "p_value_cell",
                                   "small_cell"]
    assert cells.groupby("persona_id")["share_within_persona_id"].sum().to_numpy() == pytest.approx([1, 1])
    assert cells.groupby("theme_id")["share_within_theme_id"].sum().to_numpy() == pytest.approx([1, 1])
    assert not cells["small_cell"].any()
    assert cell_statistics(_table([[1, 2], [3, 0]]))["small_cell"].all()
