"""Figures: one function per figure, each takes data (+ optional ``ax``) and returns the Figure.

Figures are built on ``matplotlib.figure.Figure`` rather than pyplot, so nothing here
touches global state, opens a window or needs a display; save them with ``save`` (or
``fig.savefig``).
Colour maps are colour-blind safe (cividis for counts, PuOr with symmetric limits for
residuals, Okabe–Ito for categories), and text is set in DejaVu Sans, which has æøåäö.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.patches import PathPatch, Patch, Rectangle
from matplotlib.path import Path as CurvePath

from analysis.personas import persona_order as _persona_order, persona_quotes
from analysis.stats import RESIDUAL_MARK

FONT = {"font.family": "DejaVu Sans"}

#: Okabe & Ito (2008), distinguishable with the common colour-vision deficiencies.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
NONE_GREY = "#BBBBBB"
#: Okabe–Ito with yellow last: yellow bands and bars are hard to see on white paper.
CATEGORY_COLOURS = tuple(c for c in OKABE_ITO if c != "#F0E442") + ("#F0E442",)
#: Markers paired with the colours, so categories differ in shape too (5 and 8 are coprime:
#: neighbouring categories never share both colour and marker).
CATEGORY_MARKERS = ("o", "s", "^", "D", "v")

#: What the marks in a heatmap mean, said once under its title.
HEATMAP_KEY = "▲ / ▼ adjusted residual ≥ +2 / ≤ −2 · hatched: expected count < 5"


def _figure_and_axes(ax, size):
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _label(labels: Mapping[str, str] | None, key: str) -> str:
    return (labels or {}).get(key, key)


def _grid(table: pd.DataFrame, value: str) -> pd.DataFrame:
    grid = table.pivot(index="theme_id", columns="persona_id", values=value)
    return grid.reindex(columns=_persona_order(grid.columns)).sort_index()


def _residual_marker(residual: float) -> str:
    if residual >= RESIDUAL_MARK:
        return " ▲"
    if residual <= -RESIDUAL_MARK:
        return " ▼"
    return ""


def _heatmap_image(ax, grid: pd.DataFrame, value: str):
    if value == "std_residual":
        limit = max(float(np.nanmax(np.abs(grid.to_numpy()))), RESIDUAL_MARK)
        return ax.imshow(grid.to_numpy(float), cmap="PuOr", vmin=-limit, vmax=limit, aspect="auto")
    return ax.imshow(grid.to_numpy(float), cmap="cividis", vmin=0, aspect="auto")


def _annotate_cells(ax, image, counts, residuals, small) -> None:
    for (i, j), count in np.ndenumerate(counts.to_numpy()):
        shade = image.cmap(image.norm(image.get_array()[i, j]))
        ink = "black" if mpl.colors.rgb_to_hsv(shade[:3])[2] > 0.6 else "white"
        ax.text(j, i, f"{int(count)}{_residual_marker(residuals.iat[i, j])}",
                ha="center", va="center", fontsize=8, color=ink)
        if small.iat[i, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                   edgecolor="0.5", linewidth=0))


def _share_heatmap(counts: pd.DataFrame, shares: pd.DataFrame, residuals: pd.DataFrame, small: pd.DataFrame,
                   ax, column_title: str, title: str, theme_labels, column_labels) -> Figure:
    """Theme × column heatmap coloured by the share within each column, so a large column
    (persona 'none', a big workshop) cannot swamp the scale; cells show the count and ▲/▼."""
    figure, ax = _figure_and_axes(ax, (2.4 + 1.1 * counts.shape[1], 2.4 + 0.45 * counts.shape[0]))
    image = ax.imshow(shares.to_numpy(float), cmap="cividis", vmin=0, vmax=max(float(np.nanmax(shares.to_numpy(float))), 0.05),
                      aspect="auto")
    _annotate_cells(ax, image, counts, residuals, small)
    ax.set_xticks(range(counts.shape[1]), [_wrapped(_label(column_labels, c), 16, 2) for c in counts.columns],
                  rotation=30, ha="right")
    ax.set_yticks(range(counts.shape[0]), [_wrapped(_label(theme_labels, t), 40, 2) for t in counts.index])
    ax.set_xlabel(column_title)
    ax.set_ylabel("theme")
    ax.set_title(title)
    colourbar = figure.colorbar(image, ax=ax, shrink=0.8, format=PercentFormatter(1.0, decimals=0))
    colourbar.set_label(f"share of the {column_title}'s themed notes")
    # The key goes under the title: a legend below the cells collided with the axis label.
    ax.set_title(f"{title}\n{HEATMAP_KEY}", fontsize=10)
    return figure


def theme_persona_heatmap(table: pd.DataFrame, ax=None, value: str = "count",
                          theme_labels: Mapping[str, str] | None = None,
                          persona_names: Mapping[str, str] | None = None) -> Figure:
    """Theme × persona: colour is the share of each persona's themed notes (``value="count"``) or
    the adjusted residual (``value="std_residual"``); cells show counts, ▲/▼ and hatched small cells.

    ``table`` is personas.theme_persona_table(...). ▲/▼ mark an adjusted residual ≥ +2 / ≤ −2
    (more / fewer notes than independence predicts); hatching marks expected counts below 5.
    Columns are labelled with ``persona_names`` (id -> name) where given.
    """
    with mpl.rc_context(FONT):
        counts, residuals = _grid(table, "count"), _grid(table, "std_residual")
        small = _grid(table, "small_cell").astype(bool)
        names = {"none": "no persona", **(persona_names or {})}
        if value == "std_residual":
            figure, ax = _figure_and_axes(ax, (2.4 + 1.1 * counts.shape[1], 1.8 + 0.45 * counts.shape[0]))
            image = _heatmap_image(ax, residuals, value)
            _annotate_cells(ax, image, counts, residuals, small)
            ax.set_xticks(range(counts.shape[1]), [_label(names, c) for c in counts.columns], rotation=30, ha="right")
            ax.set_yticks(range(counts.shape[0]), [_label(theme_labels, t) for t in counts.index])
            ax.set_xlabel("persona")
            ax.set_ylabel("theme")
            ax.set_title("Notes per theme and persona (colour: adjusted residual)")
            figure.colorbar(image, ax=ax, label="adjusted residual", shrink=0.8)
            return figure
        shares = counts / counts.sum(axis=0).replace(0, np.nan)
        return _share_heatmap(counts, shares.fillna(0.0), residuals, small, ax, "persona",
                              "Notes per theme and persona (colour: share of the persona's notes)",
                              theme_labels, names)


def breakdown_heatmap(breakdowns: pd.DataFrame, attribute: str, ax=None,
                      theme_labels: Mapping[str, str] | None = None) -> Figure:
    """Who says what: theme × value of one attribute from breakdowns.csv (``breakdowns.breakdown_table``)."""
    cells = breakdowns[breakdowns["attribute"] == attribute]

    def grid(column):
        return cells.pivot(index="theme_id", columns="value", values=column).sort_index().sort_index(axis=1)

    with mpl.rc_context(FONT):
        title = attribute.replace("_", " ")
        return _share_heatmap(grid("notes").fillna(0).astype(int), grid("share_within_value").astype(float).fillna(0.0),
                              grid("adjusted_residual").astype(float).fillna(0.0),
                              grid("small_cell").fillna(False).astype(bool), ax, title,
                              f"Themes by {title} (colour: share of the {title}'s notes)", theme_labels, None)


# --------------------------------------------------------------------------- flow


def _stack(totals: pd.Series, gap: float) -> dict[str, float]:
    """Bottom of each block when blocks are stacked top-down with ``gap`` between them."""
    bottoms, top = {}, float(totals.sum() + gap * (len(totals) - 1))
    for key, total in totals.items():
        top -= total
        bottoms[key] = top
        top -= gap
    return bottoms


def _band(ax, x0, x1, left, right, height, colour) -> None:
    """A band of constant height from (x0, left) to (x1, right), with smooth S-curves."""
    middle = (x0 + x1) / 2
    vertices = [(x0, left), (middle, left), (middle, right), (x1, right),
                (x1, right + height), (middle, right + height), (middle, left + height), (x0, left + height),
                (x0, left)]
    codes = [CurvePath.MOVETO, CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.LINETO,
             CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.CLOSEPOLY]
    ax.add_patch(PathPatch(CurvePath(vertices, codes), facecolor=colour, alpha=0.55, edgecolor="none"))


def _persona_colours(personas) -> dict[str, str]:
    named = [p for p in personas if p != "none"]
    colours = {p: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, p in enumerate(named)}
    colours["none"] = NONE_GREY
    return colours


def _flow_blocks(ax, bottoms, totals, x, width, colours, align, names=None) -> None:
    for key, bottom in bottoms.items():
        ax.add_patch(Rectangle((x, bottom), width, totals[key], facecolor=colours.get(key, "0.35")))
        text_x = x - 0.02 if align == "right" else x + width + 0.02
        ax.text(text_x, bottom + totals[key] / 2, f"{_label(names, key)} ({int(totals[key])})", ha=align,
                va="center", fontsize=8)


def persona_theme_flow(table: pd.DataFrame, ax=None, include_none: bool = False,
                       theme_labels: Mapping[str, str] | None = None,
                       persona_names: Mapping[str, str] | None = None) -> Figure:
    """Persona → theme flow: persona blocks (named by ``persona_names``) left, theme blocks right,
    bands ∝ note counts."""
    with mpl.rc_context(FONT):
        cells = table[table["count"] > 0]
        if not include_none:
            cells = cells[cells["persona_id"] != "none"]
        cells = cells.sort_values(["persona_id", "theme_id"])
        persona_totals = cells.groupby("persona_id")["count"].sum().reindex(_persona_order(cells["persona_id"].unique()))
        theme_totals = cells.groupby("theme_id")["count"].sum().sort_index()
        gap = max(1.0, 0.03 * float(cells["count"].sum()))
        figure, ax = _figure_and_axes(ax, (9, 1.5 + 0.35 * max(len(theme_totals), len(persona_totals))))
        colours = _persona_colours(persona_totals.index)
        left, right = _stack(persona_totals, gap), _stack(theme_totals, gap)
        left_used, right_used = dict.fromkeys(left, 0.0), dict.fromkeys(right, 0.0)
        # Bands leave each persona in theme order and enter each theme in persona order, so none cross inside a block.
        rank = {persona: i for i, persona in enumerate(persona_totals.index)}
        entry = cells.assign(_rank=cells["persona_id"].map(rank)).sort_values(
            ["theme_id", "_rank"], ascending=[True, False])
        right_start = {}
        for row in entry.itertuples():
            right_start[(row.persona_id, row.theme_id)] = right[row.theme_id] + right_used[row.theme_id]
            right_used[row.theme_id] += row.count
        for row in cells.sort_values(["theme_id"], ascending=False).itertuples():
            start = left[row.persona_id] + left_used[row.persona_id]
            left_used[row.persona_id] += row.count
            _band(ax, 0.1, 0.9, start, right_start[(row.persona_id, row.theme_id)], row.count, colours[row.persona_id])
        _flow_blocks(ax, left, persona_totals, 0.06, 0.04, colours, "right",
                     {"none": "no persona", **(persona_names or {})})
        labelled = pd.Series({_label(theme_labels, t): v for t, v in theme_totals.items()})
        _flow_blocks(ax, {_label(theme_labels, t): b for t, b in right.items()}, labelled, 0.9, 0.04, {}, "left")
        total = float(persona_totals.sum() + gap * (len(persona_totals) - 1)) if len(persona_totals) else 1.0
        ax.set_xlim(-0.25, 1.35)
        ax.set_ylim(-gap, max(total, float(theme_totals.sum() + gap * (len(theme_totals) - 1))) + gap)
        ax.axis("off")
        ax.set_title("Which themes each persona's notes fall in (band width = number of notes)")
        return figure


# --------------------------------------------------------------------------- one persona


@cache
def _font_characters() -> frozenset[int]:
    """Code points DejaVu Sans can draw (Latin with æøåäö, arrows, ▲▼; no emoji)."""
    from matplotlib import font_manager, ft2font

    return frozenset(ft2font.FT2Font(font_manager.findfont(FONT["font.family"])).get_charmap())


def drawable(text: str) -> str:
    """``text`` without the characters the figure font lacks (emoji in notes), which would print as boxes."""
    return "".join(ch for ch in str(text) if ch.isspace() or ord(ch) in _font_characters())


def _wrapped(text: str, width: int, max_lines: int) -> str:
    lines = textwrap.wrap(" ".join(drawable(text).split()), width=width, max_lines=max_lines, placeholder=" …")
    return "\n".join(lines)


def persona_top_themes(table: pd.DataFrame, quotes: pd.DataFrame, persona_id: str, ax=None,
                       n_themes: int = 5, persona_name: str | None = None,
                       theme_labels: Mapping[str, str] | None = None) -> Figure:
    """A persona's top themes as horizontal bars, each with one short quote beside it.

    ``quotes`` has theme_id, note_id and text (personas.persona_quotes(...)).
    """
    with mpl.rc_context(FONT):
        cells = table[(table["persona_id"] == persona_id) & (table["count"] > 0)]
        cells = cells.sort_values(["count", "theme_id"], ascending=[False, True]).head(n_themes)[::-1]
        figure, ax = _figure_and_axes(ax, (10, 1.2 + 0.9 * max(len(cells), 1)))
        colour = _persona_colours(sorted(table["persona_id"].unique())).get(persona_id, OKABE_ITO[0])
        positions = np.arange(len(cells))
        ax.barh(positions, cells["count"], color=colour, height=0.6)
        ax.set_yticks(positions, [_wrapped(_label(theme_labels, t), 22, 2) for t in cells["theme_id"]])
        quote_of = {row.theme_id: (row.note_id, row.text) for row in quotes.itertuples()}
        longest = float(cells["count"].max()) if len(cells) else 1.0
        for position, row in zip(positions, cells.itertuples()):
            if row.theme_id in quote_of:
                note_id, text = quote_of[row.theme_id]
                ax.text(row.count + 0.03 * longest, position, f"«{_wrapped(text, 60, 2)}» ({note_id})",
                        va="center", fontsize=8, style="italic")
        ax.set_xlim(0, longest * 2.6)  # room for the quotes to the right of the bars
        ax.set_xlabel("notes linked to the persona")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(f"Top themes for {persona_name or persona_id}, with one quote each")
        return figure


# --------------------------------------------------------------------------- theme figures


def k_selection_curve(table: pd.DataFrame, ax=None) -> Figure:
    """Modularity of the inductive partition for each candidate number of themes."""
    with mpl.rc_context(FONT):
        fig, ax = _figure_and_axes(ax, (6.4, 3.6))
        ax.plot(table["k"], table["modularity"], marker="o", color=OKABE_ITO[4], label="modularity")
        chosen = table[table["chosen"]]
        ax.scatter(chosen["k"], chosen["modularity"], s=160, facecolors="none",
                   edgecolors=OKABE_ITO[5], linewidths=2, zorder=3,
                   label=f"chosen: k = {int(chosen['k'].iloc[0])}" if len(chosen) else "chosen")
        ax.set_xlabel("number of new themes k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("modularity of the kNN graph")
        ax.set_title("Choosing the number of themes: modularity across k")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(alpha=0.3)
    return fig


def theme_sizes(themes: pd.DataFrame, ax=None) -> Figure:
    """Notes per theme, seed themes and new candidate themes told apart by colour and hatch."""
    ordered = themes.sort_values(["size", "theme_id"], ascending=[True, False])
    with mpl.rc_context(FONT):
        fig, ax = _figure_and_axes(ax, (7.5, 0.35 * len(ordered) + 1.5))
        colours = [OKABE_ITO[4] if kind == "seed" else OKABE_ITO[0] for kind in ordered["kind"]]
        hatches = ["" if kind == "seed" else "//" for kind in ordered["kind"]]
        bars = ax.barh([_wrapped(str(label), 40, 2) for label in ordered["label"]], ordered["size"],
                       color=colours)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.set_xlabel("notes")
        ax.set_title("Notes per theme (seed themes and new candidate themes)")
        ax.legend(handles=[Patch(color=OKABE_ITO[4], label="seed theme"),
                           Patch(facecolor=OKABE_ITO[0], hatch="//", label="new candidate theme")],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def run_figures(result) -> dict[str, Figure]:
    """Every figure `analysis run` saves, by file stem."""
    figures = {"theme_sizes": theme_sizes(result.themes)}
    if len(result.k_selection) > 1:
        figures["k_selection"] = k_selection_curve(result.k_selection)
    labels = dict(zip(result.themes["theme_id"], result.themes["label"]))
    if result.breakdowns is not None and len(result.breakdowns):
        for attribute in dict.fromkeys(result.breakdowns["attribute"]):
            figures[f"breakdown_{attribute}"] = breakdown_heatmap(result.breakdowns, attribute, theme_labels=labels)
    if result.persona_theme is not None and len(result.persona_theme):
        labels = dict(zip(result.themes["theme_id"], result.themes["label"]))
        figures.update(persona_figures(result.persona_theme, result.assignments, result.persona_links,
                                       result.personas, theme_labels=labels))
    return figures


def close(fig: Figure) -> None:
    """Release a figure's memory (figures here are not registered with pyplot)."""
    fig.clear()


# --------------------------------------------------------------------------- all persona figures


def persona_figures(persona_theme: pd.DataFrame, assignments: pd.DataFrame, links: pd.DataFrame,
                    personas, theme_labels: Mapping[str, str] | None = None) -> dict[str, Figure]:
    """All persona figures of a run, by file stem: heatmap, flow, and one top-themes chart per persona."""
    names = {persona.id: persona.name for persona in personas}
    figures = {"theme_persona_heatmap": theme_persona_heatmap(persona_theme, theme_labels=theme_labels,
                                                              persona_names=names),
               "persona_theme_flow": persona_theme_flow(persona_theme, theme_labels=theme_labels,
                                                        persona_names=names)}
    for persona in personas:
        quotes = persona_quotes(assignments, links, persona.id)
        figures[f"persona_top_themes_{persona.id}"] = persona_top_themes(
            persona_theme, quotes, persona.id, persona_name=persona.name, theme_labels=theme_labels)
    return figures


# --------------------------------------------------------------------------- notebook figures


def _category_style(i: int) -> dict:
    return {"color": CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)],
            "marker": CATEGORY_MARKERS[i % len(CATEGORY_MARKERS)]}


def _legend_outside(ax, **options):
    """A legend to the right of the axes, where it cannot hide data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False, **options)


PROJECTION_NAMES = {"pca": "PCA", "umap": "UMAP"}


def theme_map(coordinates: np.ndarray, theme_ids, method: str, ax=None,
              theme_labels: Mapping[str, str] | None = None, unassigned: str = "unassigned") -> Figure:
    """Notes as points in two dimensions, coloured (and shaped) by theme.

    ``coordinates`` come from ``explore.project_2d`` and ``method`` is the projection it used
    ("pca" or "umap"); the title names it. Unassigned notes are small grey crosses.
    """
    name = PROJECTION_NAMES.get(method.lower())
    if name is None:
        raise ValueError(f"method must be 'pca' or 'umap' (what explore.project_2d returned), got {method!r}.")
    coordinates = np.asarray(coordinates)
    theme_ids = np.asarray(theme_ids, dtype=object).astype(str)
    if coordinates.shape != (len(theme_ids), 2):
        raise ValueError(f"need one (x, y) pair per note: coordinates {coordinates.shape}, {len(theme_ids)} theme ids.")
    with mpl.rc_context(FONT):
        figure, ax = _figure_and_axes(ax, (10, 6.5))
        themes = sorted(set(theme_ids) - {"", unassigned})
        for i, theme in enumerate(themes):
            members = theme_ids == theme
            ax.scatter(coordinates[members, 0], coordinates[members, 1], s=18, alpha=0.8, linewidths=0.3,
                       edgecolors="white", label=_wrapped(_label(theme_labels, theme), 38, 2), **_category_style(i))
        rest = np.isin(theme_ids, ["", unassigned])
        if rest.any():
            ax.scatter(coordinates[rest, 0], coordinates[rest, 1], s=14, marker="x", color=NONE_GREY,
                       linewidths=0.8, label="unassigned")
        ax.set_xlabel(f"{name} 1")
        ax.set_ylabel(f"{name} 2")
        ax.set_title(f"Notes coloured by theme: 2-D {name} of the centred embeddings")
        _legend_outside(ax, fontsize=8, markerscale=1.4, title="theme")
        return figure


def note_length_histogram(lengths: pd.DataFrame, by: str = "source_type", measure: str = "words",
                          ax=None) -> Figure:
    """Distribution of note length (``words`` or ``chars``) per group, as outlined histograms.

    ``lengths`` is ``explore.note_lengths(notes)``.
    """
    with mpl.rc_context(FONT):
        figure, ax = _figure_and_axes(ax, (8, 4))
        upper = float(lengths[measure].max()) if len(lengths) else 1.0
        bins = np.linspace(0, max(upper, 1.0), 31)
        for i, (group, values) in enumerate(lengths.groupby(by, sort=True)[measure]):
            ax.hist(values, bins=bins, histtype="step", linewidth=1.8, color=CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)],
                    linestyle=("-", "--", ":", "-.")[i % 4], label=f"{group} (n = {len(values)})")
        ax.set_xlabel(f"{measure} per note")
        ax.set_ylabel("notes")
        ax.set_title(f"Length of the notes in {measure}, by {by.replace('_', ' ')}")
        ax.spines[["top", "right"]].set_visible(False)
        _legend_outside(ax, title=by.replace("_", " "))
        return figure


def theme_shares_by_group(table: pd.DataFrame, group: str = "site", ax=None,
                          theme_labels: Mapping[str, str] | None = None,
                          group_labels: Mapping[str, str] | None = None) -> Figure:
    """Each group's themed notes spread over the themes (share within the group), side by side.

    ``table`` is ``personas.compare_groups(assignments, group)`` (the run's ``site_theme``).
    ▲/▼ after a bar mark an adjusted residual ≥ +2 / ≤ −2: more / fewer notes than if the
    themes were spread alike in every group.
    """
    share = f"share_within_{group}"
    groups = sorted(table[group].unique())
    themes = sorted(table["theme_id"].unique())
    with mpl.rc_context(FONT):
        figure, ax = _figure_and_axes(ax, (9, 1.2 + 0.5 * len(themes) * max(1, len(groups)) / 2))
        height = 0.8 / max(len(groups), 1)
        positions = np.arange(len(themes))[::-1]
        for i, value in enumerate(groups):
            cells = table[table[group] == value].set_index("theme_id").reindex(themes)
            offsets = positions + 0.4 - height * (i + 0.5)
            ax.barh(offsets, cells[share].fillna(0), height=height * 0.95, color=CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)],
                    hatch=("", "//", "..", "xx")[i % 4], edgecolor="white", label=_label(group_labels, value))
            for y, (width, residual) in zip(offsets, zip(cells[share].fillna(0), cells["std_residual"].fillna(0))):
                mark = _residual_marker(residual).strip()
                if mark:
                    ax.text(width + 0.003, y, mark, va="center", fontsize=7)
        ax.set_yticks(positions, [_wrapped(_label(theme_labels, t), 40, 2) for t in themes])
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel(f"share of the {group}'s themed notes")
        ax.set_title(f"Theme shares within each {group} (▲/▼: adjusted residual ≥ +2 / ≤ −2)")
        ax.spines[["top", "right"]].set_visible(False)
        _legend_outside(ax, title=group)
        return figure


def save(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save ``figure`` as PNG at ``path`` (folders are created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(figure, path, dpi)


def save_png(figure: Figure, path: str | Path, dpi: int) -> Path:
    """Write ``figure`` to ``path`` as PNG cropped to its tight bounding box, drawing it once.

    The same file as ``figure.savefig(path, dpi=dpi, bbox_inches="tight")``, byte for byte, without
    its second draw: savefig first draws the whole figure (with output switched off) to run the
    layout engine and find the tight box, then draws it again to render. Here the layout engine
    runs on its own, the box is measured, and the one draw renders. The figure keeps its canvas,
    dpi and layout engine.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas, engine, figure_dpi = figure.canvas, figure.get_layout_engine(), figure.dpi
    FigureCanvasAgg(figure)  # attaches itself to the figure, as savefig's PNG printer does
    try:
        figure.dpi = dpi
        renderer = figure.canvas.get_renderer()
        if engine is not None and figure.axes:
            engine.execute(figure)
        pad = mpl.rcParams["savefig.pad_inches"]
        bbox = figure.get_tightbbox(renderer).padded(pad, pad)
        figure.dpi = figure_dpi
        # Laid out above: with any layout engine (even "none"), savefig would draw once more first.
        with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
            figure.set_layout_engine(None)
        figure.savefig(path, dpi=dpi, bbox_inches=bbox, metadata={"Software": None})
    finally:
        figure.dpi = figure_dpi
        figure.set_layout_engine(engine)
        figure.set_canvas(canvas)
    return Path(path)
