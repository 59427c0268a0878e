"""Session fixtures: one offline e5 embedder and the small committed themes corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

THEMES_FIXTURES = Path(__file__).parent / "fixtures" / "themes"


@pytest.fixture(scope="session")
def e5():
    from analysis.embed import get_embedder

    return get_embedder("e5")


@pytest.fixture(scope="session")
def topic_notes() -> pd.DataFrame:
    """40 short notes in nb/sv/en on four topics (coffee, parking, medication, volunteering)."""
    return pd.read_csv(THEMES_FIXTURES / "notes.csv", dtype=str)


@pytest.fixture(scope="session")
def topic_vectors(e5, topic_notes) -> np.ndarray:
    vectors = e5.encode(topic_notes["text"].tolist(), kind="query")
    vectors.setflags(write=False)
    return vectors


@pytest.fixture(scope="session")
def small_run(e5):
    """The configured guided run with personas over the 49-note e2e fixture (e5, no disk cache)."""
    from analysis import pipeline
    from analysis.config import load_config

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")]})
    return pipeline.run(config, embedder=e5, progress=False)
