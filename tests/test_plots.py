"""Persona figures: created, saved as PNG, titled, and Nordic letters survive."""

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.plots import persona_theme_flow, persona_top_themes, theme_persona_heatmap
from analysis.stats import cell_statistics

THEMES = {"fast_team": "Faste team rundt brukeren", "dagplan": "Dag- og ukeplan", "övergång": "Övergång med känd personal"}


@pytest.fixture()
def table():
    counts = pd.DataFrame([[12, 1, 2, 20], [3, 9, 0, 15], [0, 0, 11, 6]],
                          index=list(THEMES), columns=["edel", "knut", "åse", "none"])
    counts.index.name, counts.columns.name = "theme_id", "persona_id"
    return cell_statistics(counts).rename(columns={"share_within_persona_id": "share_within_persona",
                                                   "share_within_theme_id": "share_within_theme"})


@pytest.fixture()
def quotes():
    return pd.DataFrame({"theme_id": ["fast_team", "dagplan"], "note_id": ["B1-038", "B1-053"],
                         "text": ["Kjente fjes – hun åpner ikke for fremmede. Ære være de faste!",
                                  "Tavle ved døra: hvem kommer, når? Så slipper hun å være urolig " * 3]})


def _texts(figure: Figure) -> str:
    return " ".join(text.get_text() for text in figure.findobj(matplotlib.text.Text))


def _save(figure: Figure, path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Gg]lyph.*missing")  # a missing letter is a failure
        figure.savefig(path, dpi=60)
    assert path.stat().st_size > 1000


def test_heatmap(table, tmp_path):
    figure = theme_persona_heatmap(table, theme_labels=THEMES)
    _save(figure, tmp_path / "heatmap.png")
    ax = figure.axes[0]
    assert "theme and persona" in ax.get_title()
    assert "Övergång med känd personal" in [label.get_text() for label in ax.get_yticklabels()]
    assert "åse" in [label.get_text() for label in ax.get_xticklabels()]
    assert "▲" in _texts(figure) and "expected count < 5" in _texts(figure)


def test_residual_heatmap_uses_symmetric_diverging_limits(table, tmp_path):
    figure = theme_persona_heatmap(table, value="std_residual")
    image = figure.axes[0].images[0]
    low, high = image.get_clim()
    assert low == pytest.approx(-high) and image.cmap.name == "PuOr"
    _save(figure, tmp_path / "residuals.png")


def test_flow(table, tmp_path):
    figure = persona_theme_flow(table, theme_labels=THEMES)
    _save(figure, tmp_path / "flow.png")
    assert figure.axes[0].get_title()
    assert "åse (13)" in _texts(figure) and "Dag- og ukeplan (12)" in _texts(figure)
    assert "none" not in _texts(figure)
    assert "no persona (41)" in _texts(persona_theme_flow(table, include_none=True))
    assert "Edel (15)" in _texts(persona_theme_flow(table, persona_names={"edel": "Edel"}))


def test_top_themes_with_quotes(table, quotes, tmp_path):
    figure = persona_top_themes(table, quotes, "edel", persona_name="Edel", theme_labels=THEMES)
    _save(figure, tmp_path / "edel.png")
    assert figure.axes[0].get_title() == "Top themes for Edel, with one quote each"
    assert "Ære være" in _texts(figure) and "(B1-038)" in _texts(figure)
    quote_texts = [t.get_text() for t in figure.findobj(matplotlib.text.Text) if t.get_text().startswith("«")]
    assert len(quote_texts) == 2
    assert all(len(line) <= 70 for text in quote_texts for line in text.split("\n"))


def test_figures_draw_into_a_given_axes(table, quotes):
    figure = Figure()
    ax = figure.add_subplot()
    assert theme_persona_heatmap(table, ax=ax) is figure
    other = Figure()
    assert persona_theme_flow(table, ax=other.add_subplot()) is other
    assert persona_top_themes(table, quotes, "knut", ax=Figure().add_subplot()).axes


def test_persona_figures_for_a_run(table, quotes):
    from types import SimpleNamespace

    from analysis.plots import persona_figures

    assignments = pd.DataFrame({"note_id": ["B1-038", "B1-053"], "theme_id": ["fast_team", "dagplan"],
                                "theme_label": ["Faste team", "Dagplan"], "theme_score": [0.9, 0.8],
                                "status": ["assigned", "assigned"], "text": quotes["text"]})
    links = pd.DataFrame({"note_id": ["B1-038", "B1-053"], "persona_id": ["edel", "edel"],
                          "persona_method": ["tag", "mention"]})
    personas = [SimpleNamespace(id="edel", name="Edel"), SimpleNamespace(id="knut", name="Knut")]
    figures = persona_figures(table, assignments, links, personas, THEMES)
    assert set(figures) == {"theme_persona_heatmap", "persona_theme_flow", "persona_top_themes_edel",
                            "persona_top_themes_knut"}
    assert all(figure.axes[0].get_title() for figure in figures.values())


# --------------------------------------------------------------------------- readability: the figures the notebooks add


def _drawn_extent(figure: Figure, artist):
    figure.draw_without_rendering()  # runs the constrained layout (a bare canvas's draw() does not)
    return artist.get_window_extent()


def _legend_outside_axes(figure: Figure) -> bool:
    """True when the axes' legend box does not overlap the axes' data area."""
    ax = figure.axes[0]
    legend = ax.get_legend()
    axes_box, legend_box = _drawn_extent(figure, ax), _drawn_extent(figure, legend)
    return not axes_box.overlaps(legend_box)


@pytest.fixture()
def site_table():
    counts = pd.DataFrame([[40, 2], [5, 30], [20, 10]], index=["fast_team", "övergång", "dagplan"],
                          columns=["baerum", "mariestad"])
    counts.index.name, counts.columns.name = "theme_id", "site"
    return cell_statistics(counts)


def test_theme_map_names_its_projection_and_keeps_the_legend_off_the_points(tmp_path):
    from analysis.plots import CATEGORY_MARKERS, theme_map

    rng = np.random.default_rng(0)
    themes = np.array(["fast_team"] * 10 + ["dagplan"] * 10 + ["övergång"] * 10 + [""] * 3)
    coordinates = rng.normal(size=(len(themes), 2))
    figure = theme_map(coordinates, themes, "pca", theme_labels=THEMES)
    _save(figure, tmp_path / "map.png")
    ax = figure.axes[0]
    assert ax.get_title() == "Notes coloured by theme: 2-D PCA of the centred embeddings"
    assert ax.get_xlabel() == "PCA 1"
    assert "UMAP" in theme_map(coordinates, themes, "umap").axes[0].get_title()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "Övergång med känd personal" in labels and labels[-1] == "unassigned"
    assert _legend_outside_axes(figure)
    # Categories differ in shape as well as colour (readable without colour vision).
    markers = {collection.get_paths()[0].vertices.tobytes() for collection in ax.collections[:3]}
    assert len(markers) == 3 and len(CATEGORY_MARKERS) >= 3
    with pytest.raises(ValueError, match="'pca' or 'umap'"):
        theme_map(coordinates, themes, "tsne")
    with pytest.raises(ValueError, match="one \\(x, y\\) pair per note"):
        theme_map(coordinates[:5], themes, "pca")


def test_note_length_histogram(tmp_path):
    from analysis.plots import note_length_histogram

    lengths = pd.DataFrame({"source_type": ["note"] * 6 + ["interview"] * 4,
                            "words": [2, 3, 5, 8, 9, 12, 15, 22, 30, 41], "chars": range(10)})
    figure = note_length_histogram(lengths)
    _save(figure, tmp_path / "lengths.png")
    assert figure.axes[0].get_title() == "Length of the notes in words, by source type"
    assert {t.get_text() for t in figure.axes[0].get_legend().get_texts()} == {"interview (n = 4)", "note (n = 6)"}
    assert _legend_outside_axes(figure)


def test_theme_shares_by_group(site_table, tmp_path):
    from analysis.plots import theme_shares_by_group

    figure = theme_shares_by_group(site_table, group="site", theme_labels=THEMES,
                                   group_labels={"baerum": "Bærum", "mariestad": "Mariestad"})
    _save(figure, tmp_path / "sites.png")
    ax = figure.axes[0]
    assert ax.get_title().startswith("Theme shares within each site")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Bærum", "Mariestad"]
    assert "Övergång med känd personal" in [label.get_text() for label in ax.get_yticklabels()]
    assert "▲" in _texts(figure) and "▼" in _texts(figure)
    assert _legend_outside_axes(figure)


def test_k_selection_curve_has_whole_numbers_of_themes_and_an_outside_legend(tmp_path):
    from analysis.plots import k_selection_curve

    table = pd.DataFrame({"k": range(2, 9), "modularity": [0.2, 0.3, 0.35, 0.33, 0.3, 0.28, 0.25]})
    table["chosen"] = table["k"] == 4
    figure = k_selection_curve(table)
    _save(figure, tmp_path / "k.png")
    ax = figure.axes[0]
    assert ax.get_title() == "Choosing the number of themes: modularity across k"
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
    assert "chosen: k = 4" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert _legend_outside_axes(figure)


def test_theme_sizes_title_and_legend(tmp_path):
    from analysis.plots import theme_sizes

    themes = pd.DataFrame({"theme_id": ["fast_team", "new_01"], "label": ["Faste team", "måltid / mat"],
                           "kind": ["seed", "new"], "size": [12, 5]})
    figure = theme_sizes(themes)
    _save(figure, tmp_path / "sizes.png")
    assert figure.axes[0].get_title() == "Notes per theme (seed themes and new candidate themes)"
    assert _legend_outside_axes(figure)


def test_colour_maps_are_colour_blind_safe(table):
    from analysis.plots import CATEGORY_COLOURS, OKABE_ITO

    assert theme_persona_heatmap(table).axes[0].images[0].cmap.name == "cividis"
    assert theme_persona_heatmap(table, value="std_residual").axes[0].images[0].cmap.name == "PuOr"
    assert set(CATEGORY_COLOURS) == set(OKABE_ITO)
    assert CATEGORY_COLOURS[-1] == "#F0E442"  # pale yellow only when seven colours are used up


def test_heatmap_legend_sits_below_the_cells_and_the_axis_label(table):
    """The key is under the title: nothing is drawn between the cells and the figure's bottom edge."""
    figure = theme_persona_heatmap(table, theme_labels=THEMES)
    ax = figure.axes[0]
    assert ax.get_legend() is None and not figure.legends  # a legend there used to cover "persona"
    assert "expected count < 5" in ax.get_title() and "▲ / ▼" in ax.get_title()
    label = _drawn_extent(figure, ax.xaxis.label)
    lowest_name = min(tick.get_window_extent().y0 for tick in ax.get_xticklabels())
    assert label.y1 <= lowest_name + 1 and label.y0 >= 0  # the axis label below the names, inside the figure


def test_heatmap_colour_is_the_share_within_persona_so_none_cannot_swamp_it(table):
    figure = theme_persona_heatmap(table, theme_labels=THEMES, persona_names={"edel": "Edel"})
    ax = figure.axes[0]
    colours = ax.images[0].get_array()
    assert np.allclose(np.asarray(colours).sum(axis=0), 1.0)  # every column (none too) sums to 100 %
    assert "Edel" in [label.get_text() for label in ax.get_xticklabels()]
    assert "no persona" in [label.get_text() for label in ax.get_xticklabels()]


def test_flow_bands_avoid_pale_yellow_for_the_first_personas():
    counts = pd.DataFrame([[5, 1, 2, 4, 9], [3, 6, 1, 2, 8]], index=["fast_team", "dagplan"],
                          columns=["edel", "elias", "knut", "roald", "none"])
    counts.index.name, counts.columns.name = "theme_id", "persona_id"
    flow = persona_theme_flow(cell_statistics(counts).rename(columns={"share_within_persona_id": "share_within_persona",
                                                                     "share_within_theme_id": "share_within_theme"}))
    colours = {matplotlib.colors.to_hex(patch.get_facecolor()) for patch in flow.axes[0].patches}
    assert "#f0e442" not in colours


def test_save_creates_the_folder(table, tmp_path):
    from analysis.plots import save

    path = save(theme_persona_heatmap(table), tmp_path / "figures" / "notebooks" / "heatmap.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_emoji_in_quotes_are_dropped_not_drawn_as_boxes(table, tmp_path):
    from analysis.plots import drawable

    assert drawable("Takk for i dag 🙂 – æøå äö ▲") == "Takk for i dag  – æøå äö ▲"
    quotes = pd.DataFrame({"theme_id": ["fast_team"], "note_id": ["B1-134"], "text": ["Takk for i dag 🙂 Kjente fjes!"]})
    figure = persona_top_themes(table, quotes, "edel", persona_name="Edel", theme_labels=THEMES)
    _save(figure, tmp_path / "emoji.png")  # fails on a missing-glyph warning
    assert "«Takk for i dag Kjente fjes!» (B1-134)" in _texts(figure)


def test_save_png_writes_savefigs_tight_bytes_with_one_draw(table, tmp_path, monkeypatch):
    """plots.save_png: the file savefig(bbox_inches="tight") writes, drawn once instead of twice, and the
    figure keeps its layout engine and canvas (a colourbar and a heatmap under constrained layout)."""
    from analysis.plots import save_png

    def figure():
        return theme_persona_heatmap(table, theme_labels=THEMES)

    reference = figure()
    reference.savefig(tmp_path / "savefig.png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    drawn = figure()
    engine, canvas = drawn.get_layout_engine(), drawn.canvas
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(self), original(self, renderer))[1])
    save_png(drawn, tmp_path / "save_png.png", dpi=120)
    assert (tmp_path / "save_png.png").read_bytes() == (tmp_path / "savefig.png").read_bytes()
    assert len(draws) == 1
    assert drawn.get_layout_engine() is engine and drawn.canvas is canvas
