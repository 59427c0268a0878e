"""Who says what: themes broken down by a note attribute (participant role, workshop, group, ...).

One long table for all requested attributes, one row per (attribute, value, theme) cell:
the number of notes, the shares within the value and within the theme, Haberman's adjusted
residual and the small-cell flag from ``analysis.stats``, and the id of the cell's most typical
note (highest theme score, then note id) so that every cell can be read as a quote.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from analysis.config import did_you_mean
from analysis.stats import cell_statistics, contingency_table, contingency_tests

BREAKDOWN_COLUMNS = ["attribute", "value", "theme_id", "notes", "share_within_value", "share_within_theme",
                     "adjusted_residual", "small_cell", "quote_note_id"]

#: Used when [report] breakdowns is empty: these roles, where the notes have at least two values.
DEFAULT_BREAKDOWNS = ("participant_role", "workshop", "site")

#: Statuses that put a note in a theme (as in the persona tables).
THEMED_STATUSES = frozenset({"assigned", "new_theme", "pinned"})

#: A value written on no note is shown as this, so that blank cells are counted, not dropped.
BLANK_VALUE = "(blank)"


class BreakdownError(ValueError):
    """A requested breakdown names no column of the notes."""


def breakdown_attributes(assignments: pd.DataFrame, requested: Sequence[str] = ()) -> list[str]:
    """The attributes to break down by: ``requested`` (each must be a column), else the defaults present."""
    columns = [str(c) for c in assignments.columns]
    if not requested:
        return [a for a in DEFAULT_BREAKDOWNS if a in columns
                and assignments[a].astype(str).str.strip().replace("", pd.NA).dropna().nunique() >= 2]
    chosen = []
    for name in requested:
        key = name.strip().lower()
        if key not in columns:
            raise BreakdownError(f"breakdown {name!r}: the notes have no such column{did_you_mean(key, columns)} "
                                 f"Columns are {', '.join(c for c in columns if not c.startswith('_'))}. Fix "
                                 "[report] breakdowns in analysis.toml or --breakdown.")
        if key not in chosen:
            chosen.append(key)
    return chosen


def _themed(assignments: pd.DataFrame) -> pd.DataFrame:
    themed = assignments[assignments["status"].isin(THEMED_STATUSES)]
    return themed[themed["theme_id"].astype(str).str.strip() != ""]


def _one_breakdown(themed: pd.DataFrame, attribute: str) -> pd.DataFrame:
    frame = themed[["note_id", "theme_id", "theme_score", attribute]].copy()
    frame["value"] = frame[attribute].astype(str).str.strip().replace("", BLANK_VALUE)
    table = contingency_table(frame, "theme_id", "value")
    cells = cell_statistics(table)
    typical = (frame.assign(theme_score=pd.to_numeric(frame["theme_score"], errors="coerce").fillna(0.0))
               .sort_values(["theme_id", "value", "theme_score", "note_id"], ascending=[True, True, False, True],
                            kind="stable")
               .groupby(["theme_id", "value"], sort=True).head(1))
    quote = dict(zip(zip(typical["theme_id"], typical["value"]), typical["note_id"]))
    cells["quote_note_id"] = [quote.get((t, v), "") for t, v in zip(cells["theme_id"], cells["value"])]
    cells.insert(0, "attribute", attribute)
    cells = cells.rename(columns={"count": "notes", "std_residual": "adjusted_residual",
                                  "share_within_theme_id": "share_within_theme"})
    result = cells[BREAKDOWN_COLUMNS].sort_values(["value", "theme_id"], kind="stable").reset_index(drop=True)
    result.attrs["tests"] = contingency_tests(table).to_dict()
    return result


def breakdown_table(assignments: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """Theme × value for every attribute, in one long table (``BREAKDOWN_COLUMNS``).

    Only themed notes count (assigned, new_theme, pinned). ``.attrs["tests"]`` holds each
    attribute's overall chi-square test (with a permutation p when expected counts are small).
    """
    themed = _themed(assignments)
    parts, tests = [], {}
    for attribute in attributes:
        part = _one_breakdown(themed, attribute) if len(themed) else pd.DataFrame(columns=BREAKDOWN_COLUMNS)
        tests[attribute] = part.attrs.get("tests", {})
        parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=BREAKDOWN_COLUMNS)
    table.attrs["tests"] = tests
    return table
