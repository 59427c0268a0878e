"""Persona figures: created, saved as PNG, titled, and Nordic letters survive."""

import warnings

import matplotlib
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
    assert "none (41)" in _texts(persona_theme_flow(table, include_none=True))


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
